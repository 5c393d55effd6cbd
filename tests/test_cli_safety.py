"""The CLI never writes an input, checks every output before training, and says plainly what is wrong (issue 10)."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr

from napari_selfsup_denoise.cli import main
from napari_selfsup_denoise.io import read_image

QUICK = ["--steps", "2", "--max-seconds", "0", "--patch-size", "32", "--batch-size", "2", "--quiet"]
QUICK += ["--set", "base_channels=8", "--set", "depth=2"]
QUICK += ["--algorithm", "n2v"]  # written for N2V, the default before "auto"
QUICK += ["--accept-suspect"]  # 2 steps make a model that fails its self-check; these tests are about files


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:48, 0:40].astype(np.float32)
    return (800 + 200 * np.sin(x / 6) + rng.normal(0, 50, (2, 48, 40))).astype(np.uint16)


@pytest.fixture
def tif(tmp_path, frames) -> Path:
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, frames, imagej=True, metadata={"axes": "TYX"})
    return path


@pytest.fixture
def zarr_in(tmp_path, frames) -> Path:
    path = tmp_path / "in.zarr"
    arr = zarr.create_array(str(path), shape=frames.shape, chunks=(1, 48, 40), dtype=frames.dtype,
                            dimension_names=list("tyx"))  # fmt: skip
    arr[:] = frames
    return path


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, frames) -> Path:
    d = tmp_path_factory.mktemp("model")
    tifffile.imwrite(d / "f.tif", frames, imagej=True, metadata={"axes": "TYX"})
    # 100 steps: a model that passes its self-check, so denoise writes without --accept-suspect
    assert main(["train", str(d / "f.tif"), "-o", str(d / "m.sdmodel"), *QUICK, "--steps", "100"]) == 0
    return d / "m.sdmodel"


def _refused(capsys, argv: list[str], *needles: str, code: int = 2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "trained" not in err, "refused only after training"
    for n in needles:
        assert n in err, err
    return err


# item 1: no file the tool writes may be an input, whatever --overwrite says
@pytest.mark.parametrize(
    "argv",
    [
        ["train", "{tif}", "-o", "{tif}", "--overwrite"],
        ["run", "{tif}", "-o", "{out}", "--save-model", "{tif}", "--overwrite"],
        ["train", "{zarr}", "-o", "{zarr}/model.sdmodel"],
        ["train", "{tif}", "-o", "{link}", "--overwrite"],
        ["train", "{tif}", "-o", "{hard}", "--overwrite"],
        ["run", "{zarr}", "-o", "{zarr}/denoised", "--overwrite"],
    ],
    ids=["train-o-input", "run-save-model-input", "model-inside-input-store", "symlink", "hard-link", "run-into-store"],
)
def test_no_output_ever_writes_an_input(tmp_path, capsys, tif, zarr_in, argv):
    (tmp_path / "link.sdmodel").symlink_to(tif)
    os.link(tif, tmp_path / "hard.sdmodel")
    names = {"tif": tif, "zarr": zarr_in, "out": tmp_path / "out.tif"}
    names |= {"link": tmp_path / "link.sdmodel", "hard": tmp_path / "hard.sdmodel"}
    before = {p: _sha(p) for p in (tif, zarr_in)}
    _refused(capsys, [a.format(**names) for a in argv] + QUICK, "input", "never written")
    assert {p: _sha(p) for p in (tif, zarr_in)} == before
    assert not (zarr_in / "model.sdmodel").exists()


# item 2: every output location is checked before the first training step
@pytest.mark.parametrize(
    "argv, needle",
    [
        (["run", "{tif}", "-o", "{existing}"], "exists"),
        (["train", "{tif}", "-o", "{afile}/m.sdmodel"], "not a folder"),
        (["run", "{tif}", "-o", "{afile}/sub/out.tif"], "not a folder"),
        (["run", "{tif}", "-o", "{out}", "--save-model", "{afile}/m.sdmodel"], "not a folder"),
        (["run", "{tif}", "-o", "{out}", "--save-model", "{existing_model}"], "exists"),
        (["run", "{tif}", "-o", "{tmp}/x.tif", "--format", "zarr"], "contradicts"),
        (["train", "{tif}", "-o", "{tmp}/m.tif"], "names an image"),
    ],
    ids=[
        "run-existing",
        "train-parent-is-file",
        "run-parent-is-file",
        "save-model-parent-is-file",
        "save-model-exists",
        "format-conflict",
        "model-named-tif",
    ],  # fmt: skip
)
def test_outputs_are_checked_before_training(tmp_path, capsys, tif, argv, needle):
    (tmp_path / "existing.tif").write_bytes(b"keep")
    (tmp_path / "existing.sdmodel").write_bytes(b"keep")
    (tmp_path / "afile").write_text("not a folder")
    names = {"tif": tif, "tmp": tmp_path, "afile": tmp_path / "afile", "out": tmp_path / "out.tif"}
    names |= {"existing": tmp_path / "existing.tif", "existing_model": tmp_path / "existing.sdmodel"}
    _refused(capsys, [a.format(**names) for a in argv] + QUICK, needle)
    assert (tmp_path / "existing.tif").read_bytes() == b"keep"


def _unwritable_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir(mode=0o500)
    if os.access(folder, os.W_OK):  # root ignores permission bits; sysfs refuses new files even to root
        folder = Path("/sys")
        probe = folder / ".selfsup-probe"
        try:
            probe.touch()
        except OSError:
            return folder
        probe.unlink()
        pytest.skip("no unwritable folder available to this user")
    return folder


@pytest.mark.parametrize("argv", [["run", "{tif}", "-o", "{locked}/x.tif"], ["train", "{tif}", "-o", "{locked}/m"],
                                  ["run", "{tif}", "-o", "{out}", "--save-model", "{locked}/m"]],
                         ids=["run", "train", "run-save-model"])  # fmt: skip
def test_an_unwritable_folder_is_refused_before_training(tmp_path, capsys, tif, argv):
    names = {"tif": tif, "locked": _unwritable_folder(tmp_path), "out": tmp_path / "out.tif"}
    _refused(capsys, [a.format(**names) for a in argv] + QUICK, "not writable")


def test_model_is_kept_in_a_fallback_file_when_saving_fails(tmp_path, capsys, tif, monkeypatch):
    from napari_selfsup_denoise.engine.model import Model

    target, real_save = tmp_path / "m.sdmodel", Model.save

    def failing_save(self, path):
        if Path(path) == target:
            raise PermissionError(13, "Permission denied", str(path))
        return real_save(self, path)

    monkeypatch.setattr(Model, "save", failing_save)
    assert main(["train", str(tif), "-o", str(target), *QUICK]) == 1
    err = capsys.readouterr().err
    kept = [p for p in tmp_path.glob("selfsup-denoise-*.sdmodel")]
    assert len(kept) == 1 and str(kept[0]) in err and "could not write" in err


def test_run_keeps_the_model_when_denoising_fails(tmp_path, capsys, tif, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # (run --resume onto another run's output no longer trains: tests/test_cli_resume.py)
    monkeypatch.setattr("napari_selfsup_denoise.batch.runner.predict_units", disk_full)
    assert main(["run", str(tif), "-o", str(tmp_path / "out.tif"), *QUICK]) == 1
    err = capsys.readouterr().err
    kept = list(tmp_path.glob("selfsup-denoise-*.sdmodel"))
    assert len(kept) == 1 and "saved to" in err and "No space left" in err


# item 3: the output format follows the -o suffix; --format overrides; a contradiction is an error
@pytest.mark.parametrize(
    "src, name, fmt, kind",
    [
        ("tif", "o.zarr", None, "zarr"),
        ("zarr", "o.tif", None, "tiff"),
        ("tif", "o.ome.zarr", None, "ome-zarr"),
        ("zarr", "o.zarr", "ome-zarr", "ome-zarr"),
        ("zarr", "o.tiff", "tiff", "tiff"),
    ],  # fmt: skip
)
def test_output_format_follows_the_suffix(tmp_path, tif, zarr_in, model_file, src, name, fmt, kind):
    out = tmp_path / name
    argv = ["denoise", "-m", str(model_file), str(tif if src == "tif" else zarr_in), "-o", str(out), "--quiet"]
    assert main(argv + (["--format", fmt] if fmt else [])) == 0
    assert out.is_dir() == (kind != "tiff")
    assert read_image(out).kind == kind


def test_format_contradicting_the_suffix_is_an_error(tmp_path, capsys, tif, model_file):
    out = tmp_path / "o.tif"
    assert main(["denoise", "-m", str(model_file), str(tif), "-o", str(out), "--format", "zarr", "--quiet"]) == 1
    assert "contradicts" in capsys.readouterr().err and not out.exists()


# item 6: model files follow the umask like any other output
def test_model_file_mode_follows_umask(tmp_path, model_file):
    from napari_selfsup_denoise import load_model

    old = os.umask(0o022)
    try:
        path = load_model(model_file).save(tmp_path / "shared.sdmodel")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


# items 14 and 15: user errors get a plain message and exit 2; nonsense budgets and sizes are refused
def _truncated(tmp_path: Path, frames: np.ndarray, kind: str, keep: float) -> Path:
    full = tmp_path / "full.tif"
    kw = {"imagej": {"imagej": True, "metadata": {"axes": "TYX"}}, "ome": {"ome": True}, "plain": {"metadata": None}}
    tifffile.imwrite(full, np.concatenate([frames] * 3), **kw[kind])
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * keep)])
    return cut


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--set", "depth=abc"], "depth must be int"),
        (["--set", "learning_rate=[1]"], "learning_rate must be"),
        (["--device", "cuda"], "CUDA is not available"),
    ],  # fmt: skip
    ids=["set-depth-abc", "set-lr-list", "device-cuda"],
)
def test_user_errors_exit_2_with_a_plain_message(tmp_path, capsys, tif, extra, needle):
    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    err = _refused(capsys, ["train", str(tif), "-o", str(tmp_path / "m"), *QUICK, *extra], needle)
    assert "unexpected" not in err


def test_denoise_on_a_missing_device_is_a_usage_error(tmp_path, capsys, tif, model_file):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    argv = ["denoise", "-m", str(model_file), str(tif), "-o", str(tmp_path / "o.tif"), "--device", "cuda"]
    _refused(capsys, argv, "CUDA is not available")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
@pytest.mark.parametrize("kind", ["imagej", "ome", "plain"])  # OME and plain multi-page were read as their 1st plane
def test_truncated_tiff_is_a_plain_error(tmp_path, capsys, frames, kind, keep):
    cut = _truncated(tmp_path, frames, kind, keep)
    err = _refused(capsys, ["train", str(cut), "-o", str(tmp_path / "m"), *QUICK], "truncated or damaged")
    assert "unexpected" not in err


@pytest.mark.parametrize("argv", [["--max-seconds", "-1"], ["--max-seconds", "nan"], ["--tile", "3"]])
def test_nonsense_budgets_and_tiles_are_refused(tmp_path, tif, argv):
    with pytest.raises(SystemExit) as exc:
        main(["run", str(tif), "-o", str(tmp_path / "o.tif"), *QUICK, *argv])
    assert exc.value.code == 2


def test_tiles_the_command_line_refuses_warn_in_the_api(model_file, frames):
    from napari_selfsup_denoise import load_model
    from napari_selfsup_denoise.config import PredictConfig

    needle = "below 32, the smallest tile the command line accepts"
    with pytest.warns(UserWarning, match=needle):
        PredictConfig(tile=16)
    with pytest.warns(UserWarning, match=needle):
        load_model(model_file).denoise(frames[0].astype(np.float32), tile=8, check=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PredictConfig(tile=32), PredictConfig()


def test_one_pixel_images_are_too_small(tmp_path, capsys, model_file):
    one = tmp_path / "one.tif"
    tifffile.imwrite(one, np.array([[7.0]], np.float32))
    _refused(capsys, ["train", str(one), "-o", str(tmp_path / "m"), *QUICK], "too small")
    _refused(capsys, ["denoise", "-m", str(model_file), str(one), "-o", str(tmp_path / "o.tif")], "too small", code=1)
    assert not (tmp_path / "o.tif").exists()


def test_axes_hint_names_the_command_line_flag(tmp_path, capsys, model_file):
    five = tmp_path / "five.tif"
    tifffile.imwrite(five, np.zeros((2, 2, 3, 40, 40), np.float32))
    err = _refused(capsys, ["denoise", "-m", str(model_file), str(five), "-o", str(tmp_path / "o.tif")], code=1)
    assert "--axes" in err
