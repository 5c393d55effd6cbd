"""``run --resume`` never trains a new model onto an earlier run's output; Ctrl-C names the command that continues.

A new run's model always differs from the one an output records, so ``run
--resume`` used to train the full budget and then fail with "different: model"
(issue 10, items 2 and 4). It now reuses the ``--save-model`` file that made the
output, or stops before training and names ``selfsup-denoise denoise ... --resume``
with the model file the interrupted run saved.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfsup_denoise.batch.runner import FileRunner
from napari_selfsup_denoise.cli import main
from napari_selfsup_denoise.io import read_image

QUICK = ["--steps", "2", "--max-seconds", "0", "--patch-size", "32", "--batch-size", "2", "--quiet"]
QUICK += ["--set", "base_channels=8", "--set", "depth=2", "--algorithm", "n2v", "--accept-suspect", "--tile", "32"]


@pytest.fixture
def tif(tmp_path) -> Path:
    rng = np.random.default_rng(5)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, (800 + rng.normal(0, 50, (2, 48, 40))).astype(np.uint16), imagej=True,
                     metadata={"axes": "TYX"})  # fmt: skip
    return path


def _interrupted_run(monkeypatch, capsys, argv: list[str]) -> str:
    """Run ``argv`` with a Ctrl-C after the first output chunk is written; return stderr."""
    real = FileRunner._on_unit

    def on_unit(self, *a, **kw):
        real(self, *a, **kw)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(FileRunner, "_on_unit", on_unit)
        assert main(argv) == 130
    return capsys.readouterr().err


def _complete(out: Path) -> bool:
    return bool(dict(zarr.open_array(str(out), mode="r").attrs["selfsup_denoise"]).get("complete"))


def test_run_resume_stops_before_training_and_names_the_command_that_continues(tmp_path, capsys, monkeypatch, tif):
    out = tmp_path / "out.zarr"
    err = _interrupted_run(monkeypatch, capsys, ["run", str(tif), "-o", str(out), *QUICK])
    kept = list(tmp_path.glob("selfsup-denoise-*.sdmodel"))
    assert len(kept) == 1 and "To continue: selfsup-denoise denoise" in err and str(kept[0]) in err, err
    assert "--resume" in err and not _complete(out)
    # the trap: run --resume trained a new model, then refused the output ("different: model")
    assert main(["run", str(tif), "-o", str(out), "--resume", *QUICK]) == 2
    err2 = capsys.readouterr().err
    assert "trained" not in err2 and "selfsup-denoise denoise" in err2 and str(kept[0]) in err2, err2
    # the command the interrupted run printed finishes the output as one uninterrupted run writes it
    command = shlex.split(err.split("To continue: ")[1].strip())
    assert command[:2] == ["selfsup-denoise", "denoise"] and "--tile" in command
    assert main(command[1:]) == 0 and _complete(out)
    assert main(["denoise", "-m", str(kept[0]), str(tif), "-o", str(tmp_path / "ref.zarr"), "--tile", "32",
                 "--accept-suspect", "--quiet"]) == 0  # fmt: skip
    np.testing.assert_array_equal(read_image(out).data[:], read_image(tmp_path / "ref.zarr").data[:])


def test_run_resume_reuses_the_saved_model_that_made_the_output(tmp_path, capsys, monkeypatch, tif):
    out, model = tmp_path / "out.zarr", tmp_path / "m.sdmodel"
    argv = ["run", str(tif), "-o", str(out), "--save-model", str(model), *QUICK]
    err = _interrupted_run(monkeypatch, capsys, argv)
    assert f"-m {model}" in err and not list(tmp_path.glob("selfsup-denoise-*.sdmodel"))
    assert main([*argv, "--resume"]) == 0
    err = capsys.readouterr().err
    assert "trained" not in err and "not training" in err and _complete(out)


def test_run_resume_with_another_saved_model_is_refused_before_training(tmp_path, capsys, monkeypatch, tif):
    out, other = tmp_path / "out.zarr", tmp_path / "other.sdmodel"
    _interrupted_run(monkeypatch, capsys, ["run", str(tif), "-o", str(out), *QUICK])
    assert main(["train", str(tif), "-o", str(other), *QUICK[:-2], "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["run", str(tif), "-o", str(out), "--resume", "--save-model", str(other), *QUICK]) == 2
    err = capsys.readouterr().err
    assert "trained" not in err and "another model" in err, err


def test_ctrl_c_while_training_says_nothing_was_written(tmp_path, capsys, monkeypatch, tif):
    from napari_selfsup_denoise.cli import _commands

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_commands, "_train", interrupted)
    assert main(["run", str(tif), "-o", str(tmp_path / "o.tif"), *QUICK]) == 130
    err = capsys.readouterr().err
    assert "while training" in err and "--resume" not in err
