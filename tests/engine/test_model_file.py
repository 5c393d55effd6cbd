"""Model files: exact round trip, and clear refusals of corrupt, pickle and foreign files."""

import pickle

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import load_model, train
from napari_selfsup_denoise.engine.model_file import ModelFileError, read_metadata, save

TINY = dict(algorithm="n2v", max_steps=6, max_seconds=None, patch_size=32, batch_size=4, base_channels=8, depth=2)


@pytest.fixture(scope="module")
def tiny_model(camera_128):
    return train(camera_128[1], axes="YX", **TINY)


def test_save_load_gives_identical_output(tiny_model, camera_128, tmp_path):
    path = tiny_model.save(tmp_path / "m.sdmodel")
    loaded = load_model(path)
    a = tiny_model.denoise(camera_128[1], precision="fp32")
    b = loaded.denoise(camera_128[1], precision="fp32")
    np.testing.assert_array_equal(a, b)
    meta = read_metadata(path)
    assert meta["algorithm"] == "n2v" and meta["axes"] == "YX" and meta["channels"] == 1
    assert meta["summary"]["steps"] == 6
    assert not list(tmp_path.glob("*.tmp")), "atomic save must not leave temporary files"


def test_a_header_length_that_starts_like_a_pickle_still_loads(tiny_model, tmp_path):
    """The first byte of a safetensors file is the header length's low byte; 0x80 is also a pickle's first byte."""
    for pad in range(400):
        path = save(tmp_path / "m.sdmodel", tiny_model.net.state_dict(), {**tiny_model.metadata(), "pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        pytest.fail("no padding gave a header length with low byte 0x80")
    assert read_metadata(path)["pad"] == "x" * pad
    assert load_model(path).algorithm == "n2v"


def test_save_adds_the_suffix(tiny_model, tmp_path):
    assert tiny_model.save(tmp_path / "model").name == "model.sdmodel"


def test_truncated_file_is_rejected(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m.sdmodel")
    data = path.read_bytes()
    bad = tmp_path / "trunc.sdmodel"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated|not a napari"):
        load_model(bad)


def test_pickle_and_torch_checkpoints_are_refused(tmp_path):
    p1 = tmp_path / "evil.sdmodel"
    p1.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(p1)
    p2 = tmp_path / "ckpt.pt"
    torch.save({"w": torch.zeros(3)}, p2)
    with pytest.raises(ModelFileError, match="pickle"):
        load_model(p2)


def test_foreign_and_missing_files_are_rejected(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(p))
    with pytest.raises(ModelFileError, match="not a napari-selfsup-denoise model"):
        load_model(p)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello world, not a model")
    with pytest.raises(ModelFileError, match="not a napari-selfsup-denoise model file"):
        load_model(txt)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.sdmodel")


def test_wrong_number_of_channels_is_rejected(tiny_model):
    rgb = np.random.default_rng(0).normal(100, 10, (64, 64, 3)).astype(np.float32)
    with pytest.raises(ModelFileError, match="trained on 1 channel"):
        tiny_model.denoise(rgb, axes="YXC")


def test_2d_model_refuses_3d_axes(tiny_model):
    from napari_selfsup_denoise.axes import AxesError

    with pytest.raises(AxesError, match="2D"):
        tiny_model.denoise(np.zeros((4, 32, 32), np.float32), axes="ZYX")
