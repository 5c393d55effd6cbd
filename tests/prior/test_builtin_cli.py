"""The prior on the command line: --start-from, denoise --model builtin (exit 4 on a failed check), info."""

from __future__ import annotations

import json

import numpy as np
import tifffile

from napari_selfsup_denoise.cli import main


def _image(tmp_path, blobs):
    path = tmp_path / "blobs.tif"
    tifffile.imwrite(path, blobs[1])
    return path


def test_zero_shot_cli_checks_and_writes(stand_in_prior, blobs, tmp_path, capsys):
    src, out = _image(tmp_path, blobs), tmp_path / "out.tif"
    assert main(["denoise", "-m", "builtin", str(src), "-o", str(out), "--quiet"]) == 4  # untrained stand-in
    err = capsys.readouterr().err
    assert "self-check" in err and "Nothing was written" in err and not out.exists()
    assert main(["denoise", "-m", "builtin", str(src), "-o", str(out), "--quiet", "--accept-suspect"]) == 0
    assert "zero-shot: built-in prior blindspot_2d (version test, commit 0123abcd" in capsys.readouterr().err
    assert tifffile.imread(out).shape == blobs[1].shape


def test_zero_shot_cli_without_the_prior(no_prior, blobs, tmp_path, capsys):
    src = _image(tmp_path, blobs)
    assert main(["denoise", "-m", "builtin", str(src), "-o", str(tmp_path / "o.tif"), "--quiet"]) == 2
    assert "needs the built-in prior, which is not installed" in capsys.readouterr().err


def test_noise_model_flag_is_for_builtin_only(stand_in_prior, blobs, tmp_path, capsys):
    src = _image(tmp_path, blobs)
    rc = main(["denoise", "-m", "x.sdmodel", str(src), "-o", str(tmp_path / "o.tif"), "--noise-model", "gaussian"])
    assert rc == 2 and "--model builtin only" in capsys.readouterr().err


def test_train_says_where_it_starts_and_info_shows_it(stand_in_prior, blobs, tmp_path, capsys):
    src = _image(tmp_path, blobs)
    common = ["--steps", "1", "--max-seconds", "0", "--quiet", "--accept-suspect"]  # the default algorithm: auto
    assert main(["train", str(src), "-o", str(tmp_path / "a.sdmodel"), *common]) == 0
    err = capsys.readouterr().err
    assert "training blindspot (auto: 2D: " in err and "start: built-in prior blindspot_2d" in err
    assert main(["train", str(src), "-o", str(tmp_path / "b.sdmodel"), *common, "--start-from", "random"]) == 0
    assert "start: random weights (start_from=random)" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "a.sdmodel")]) == 0
    out = capsys.readouterr().out
    assert "start: built-in prior blindspot_2d (version test, commit 0123abcd" in out
    assert "algorithm_choice: blindspot (auto: 2D: " in out
    assert main(["info", str(tmp_path / "b.sdmodel"), "--json"]) == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["config"]["start_from"] == "random" and meta["summary"]["start"]["kind"] == "random"
    assert main(["info", "builtin"]) == 0
    assert "blindspot" in capsys.readouterr().out


def test_missing_prior_warns_and_trains(no_prior, blobs, tmp_path, capsys):
    src = _image(tmp_path, blobs)
    args = ["--algorithm", "blindspot", "--steps", "1", "--max-seconds", "0", "--quiet", "--accept-suspect"]
    assert main(["train", str(src), "-o", str(tmp_path / "a.sdmodel"), *args]) == 0
    err = capsys.readouterr().err
    assert "warning: start: the built-in prior is not installed" in err and "random weights" in err
    assert np.isfinite(tifffile.imread(src)).all()
