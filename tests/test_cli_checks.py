"""The CLI and the self-check: a suspect result exits 4 and writes nothing, unless ``--accept-suspect``."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage as ndi

from napari_selfsup_denoise import train
from napari_selfsup_denoise.cli import main
from napari_selfsup_denoise.engine import checks
from napari_selfsup_denoise.engine._training import choose_patch
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import PatchSampler
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.io.tiff import read_tiff_record

EXIT_SUSPECT = 4


@pytest.fixture(scope="module")
def blobs_tif(tmp_path_factory):
    rng = np.random.default_rng(0)
    clean = ndi.gaussian_filter(rng.random((128, 128)), 4)
    clean = (clean - clean.min()) / np.ptp(clean) * 200 + 20
    noisy = (clean + rng.normal(0, 20, clean.shape)).astype(np.float32)
    path = tmp_path_factory.mktemp("checks") / "blobs.tif"
    tifffile.imwrite(path, noisy, imagej=True, metadata={"axes": "YX"})
    return path


@pytest.fixture(scope="module")
def good_model(blobs_tif) -> Model:
    noisy = tifffile.imread(blobs_tif)
    common = {"max_steps": 100, "max_seconds": None, "base_channels": 8, "depth": 2, "patch_size": 32}
    return train(noisy, axes="YX", algorithm="n2v", precision="fp32", seed=0, **common)


@pytest.fixture(scope="module")
def broken_file(good_model, blobs_tif) -> str:
    """The good model's architecture with random weights, its self-check computed as training would."""
    noisy = tifffile.imread(blobs_tif)
    torch.manual_seed(1)
    m = good_model
    net = get_method(m.config).build(m.ndim, m.channels).eval()
    broken = Model(net, m.config, m.axes, m.ndim, m.channels, m.norm, dict(m.summary))
    canon = canonical(noisy, m.axes)
    patch = choose_patch(m.config, canon.shape[3:], m.ndim, m.multiple)
    sampler = PatchSampler(canon, m.norm, patch, np.random.default_rng(0), m.config.val_fraction, False)
    broken.summary["self_check"] = checks.check_training(broken, sampler).to_dict()
    assert not broken.check.passed
    return str(broken.save(blobs_tif.parent / "broken.sdmodel"))


def test_a_suspect_result_exits_4_and_writes_nothing(tmp_path, blobs_tif, broken_file, capsys):
    out = tmp_path / "out.tif"
    assert main(["denoise", "-m", broken_file, str(blobs_tif), "-o", str(out), "--quiet"]) == EXIT_SUSPECT
    err = capsys.readouterr().err
    assert "SUSPECT" in err and "self-check" in err and "--accept-suspect" in err and "retrain" in err
    assert not out.exists()


def test_accept_suspect_writes_the_output_marked_in_its_metadata(tmp_path, blobs_tif, broken_file, capsys):
    out = tmp_path / "out.tif"
    assert main(["denoise", "-m", broken_file, str(blobs_tif), "-o", str(out), "--quiet", "--accept-suspect"]) == 0
    assert "warning" in capsys.readouterr().err
    record = read_tiff_record(out)["self_check"]
    assert record["status"].startswith("suspect") and record["messages"]
    zout = tmp_path / "out.zarr"
    args = ["denoise", "-m", broken_file, str(blobs_tif), "-o", str(zout), "--format", "zarr", "--accept-suspect"]
    assert main([*args, "--quiet"]) == 0
    import zarr

    assert zarr.open_array(str(zout), mode="r").attrs["selfsup_denoise"]["self_check"]["status"].startswith("suspect")


def test_info_shows_the_self_check(broken_file, capsys):
    assert main(["info", broken_file]) == 0
    out = capsys.readouterr().out
    assert "self-check FAILED" in out and "what to try" in out


def test_a_good_model_passes_and_records_it(tmp_path, blobs_tif, good_model, capsys):
    model = str(good_model.save(tmp_path / "good.sdmodel"))
    assert main(["info", model]) == 0
    assert "self-check passed" in capsys.readouterr().out
    out = tmp_path / "out.tif"
    assert main(["denoise", "-m", model, str(blobs_tif), "-o", str(out), "--quiet"]) == 0
    record = read_tiff_record(out)["self_check"]
    assert record["status"] == "passed"
    assert [x.split(": self-check passed (")[0] for x in record["figures"]] == ["training", "image"]  # the figures kept


def test_an_image_at_ten_times_the_intensity_is_refused(tmp_path, blobs_tif, good_model, capsys):
    model = str(good_model.save(tmp_path / "good.sdmodel"))
    bright = tmp_path / "bright.tif"
    tifffile.imwrite(bright, tifffile.imread(blobs_tif) * 10, imagej=True, metadata={"axes": "YX"})
    out = tmp_path / "out.tif"
    assert main(["denoise", "-m", model, str(bright), "-o", str(out), "--quiet"]) == EXIT_SUSPECT
    err = capsys.readouterr().err
    assert "intensity" in err and "retrain" in err and not out.exists()


@pytest.mark.slow
def test_a_suspect_posterior_writes_the_prior_mean_and_says_so(tmp_path, blobs_tif, capsys):
    import math

    from napari_selfsup_denoise.io import read_image

    noisy = tifffile.imread(blobs_tif)
    common = {"max_steps": 100, "max_seconds": None, "base_channels": 8, "depth": 2, "patch_size": 32}
    model = train(noisy, axes="YX", algorithm="blindspot", precision="fp32", seed=0, **common)
    with torch.no_grad():
        model.net.noise.log_var += math.log(10.0)  # the noise model at 10x the truth
    canon = canonical(noisy, model.axes)
    patch = tuple([1, *model.summary["patch"]])
    sampler = PatchSampler(canon, model.norm, patch, np.random.default_rng(0), model.config.val_fraction, False)
    model.summary["self_check"] = checks.check_training(model, sampler).to_dict()
    assert model.check.suspect == "posterior"
    path = str(model.save(tmp_path / "noisy_noise.sdmodel"))
    out, prior = tmp_path / "out.tif", tmp_path / "prior.tif"
    assert main(["denoise", "-m", path, str(blobs_tif), "-o", str(out), "--quiet"]) == 0
    assert "prior mean" in capsys.readouterr().err
    assert read_tiff_record(out)["self_check"]["status"] == "posterior suspect; the prior mean was written"
    assert main(["denoise", "-m", path, str(blobs_tif), "-o", str(prior), "--quiet", "--prior"]) == 0
    np.testing.assert_array_equal(np.asarray(read_image(out).data), np.asarray(read_image(prior).data))
