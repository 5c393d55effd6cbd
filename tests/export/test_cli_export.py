"""``selfsup-denoise export`` runs the same export; bad targets and foreign packages end in one clear line."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tifffile
import yaml

from napari_selfsup_denoise import load_model
from napari_selfsup_denoise.cli import main


@pytest.fixture(scope="module")
def model_file(passing, tmp_path_factory):
    model, _ = passing  # its self-check passed (the 3-step models of ``packages`` failed: refused without a flag)
    return model.save(tmp_path_factory.mktemp("cli-export") / "blindspot.sdmodel")


def _fails(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for n in needles:
        assert n in err, err


def test_export_writes_a_package_that_loads_back(passing, model_file, tmp_path, capsys):
    model, image = passing
    out = tmp_path / "shared"
    argv = ["export", str(model_file), "-o", str(out), "--name", "Camera BSN", "--authors", "Ada Lovelace, Alan Turing",
            "--license", "MIT", "--cite", "10.1109/cvpr.2019.00223|Krull et al. 2019"]  # fmt: skip
    assert main(argv) == 0
    assert "bioimageio test" in capsys.readouterr().err
    with zipfile.ZipFile(tmp_path / "shared.zip") as zf:
        doc = yaml.safe_load(zf.read("rdf.yaml"))
    assert doc["name"] == "Camera BSN" and doc["license"] == "MIT"
    assert [a["name"] for a in doc["authors"]] == ["Ada Lovelace", "Alan Turing"]
    assert doc["cite"] == [{"text": "Krull et al. 2019", "doi": "10.1109/cvpr.2019.00223"}]
    again = load_model(tmp_path / "shared.zip")
    np.testing.assert_array_equal(again.denoise(image, device="cpu"), model.denoise(image, device="cpu"))
    assert main(["info", str(tmp_path / "shared.zip")]) == 0
    assert "blindspot" in capsys.readouterr().out


def test_export_with_an_image_file(model_file, passing, tmp_path):
    _, image = passing
    tifffile.imwrite(tmp_path / "train.tif", image)
    assert main(["export", str(model_file), "-o", str(tmp_path / "p.zip"), "--image", str(tmp_path / "train.tif")]) == 0
    with zipfile.ZipFile(tmp_path / "p.zip") as zf, zf.open("test_input.npy") as fh:
        assert np.isin(np.load(fh), image).all()


def test_bad_targets_and_models_give_one_actionable_line(model_file, packages, tmp_path, capsys):
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"x")
    _fails(capsys, ["export", str(model_file), "-o", str(taken)], "exists", "--overwrite")
    _fails(capsys, ["export", str(model_file), "-o", str(tmp_path / "no" / "m.zip")], "does not exist")
    _fails(capsys, ["export", str(model_file), "-o", str(tmp_path / "m.zip"), "--name", "bad/name"], "letters")
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump({"type": "model", "name": "Other", "weights": {"onnx": {}}}))
    _fails(capsys, ["export", str(foreign), "-o", str(tmp_path / "f.zip")], "another tool", "onnx")
    _fails(capsys, ["info", str(foreign)], "another tool")
    if sys.platform.startswith("linux"):
        _fails(capsys, ["export", str(model_file), "-o", "/sys/m.zip"], "not writable")


def test_export_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "napari_selfsup_denoise.cli", "export", "--help"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 0
    options = ("--name", "--authors", "--description", "--license", "--cite", "--overwrite", "--image")
    for opt in (*options, "--accept-suspect"):
        assert opt in r.stdout


def test_export_never_replaces_its_input_package(packages, tmp_path, capsys):
    pkg = tmp_path / "pkg.zip"
    pkg.write_bytes(packages["n2v"][1].read_bytes())
    before = pkg.read_bytes()
    _fails(capsys, ["export", str(pkg), "-o", str(pkg), "--overwrite"], "input", "never written")
    assert pkg.read_bytes() == before
