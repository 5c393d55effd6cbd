"""A package computes what the model's self-check decided, states the check, and a suspect model is refused."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml

from napari_selfsup_denoise import load_model
from napari_selfsup_denoise.cli import main
from napari_selfsup_denoise.engine import checks
from napari_selfsup_denoise.engine.model_file import PACKAGE_KEY
from napari_selfsup_denoise.export import SuspectModelError, export_bmz

EXIT_SUSPECT = 4


def _failed(name: str, value: float) -> dict:
    """A training check in which only ``name`` failed, as a model's summary stores it."""
    return checks.verdict([checks.Figure(name, value, *checks.RANGES[name])], "training", 1000, True).to_dict()


def _chose_prior(stored: dict) -> dict:
    return {**stored, "choice": {**stored["choice"], "output": "prior"}}


def _package(path):
    with zipfile.ZipFile(path) as zf, zf.open("test_input.npy") as fh:
        return yaml.safe_load(zf.read("rdf.yaml")), zf.read("README.md").decode(), np.load(fh)


@pytest.mark.parametrize("case", ["chosen", "fell back"])
def test_a_model_returning_its_prior_mean_exports_the_prior_mean(passing, tmp_path, case):
    from bioimageio.core import create_prediction_pipeline, load_model_description, predict

    model = load_model(passing[0].save(tmp_path / "m.sdmodel"))  # a copy: the session's model stays as trained
    stored = model.summary["self_check"]
    # "chosen": the check passed and chose the prior mean (as the audit's probe did when trained on main; kept
    # so if training changes); "fell back": the noise model's figures failed, the prior mean is the safer output.
    model.summary["self_check"] = _chose_prior(stored) if case == "chosen" else _failed("calibration", 5.0)
    path = export_bmz(model, tmp_path / "prior")  # main: ArchitectureError "... differ ... (please report this)"
    doc, readme, x = _package(path)
    want = model.denoise(x[0], "CYX", device="cpu", precision="fp32")[None]
    posterior = model.denoise(x[0], "CYX", device="cpu", precision="fp32", output="posterior", check=False)[None]
    assert np.abs(want - posterior).max() > 1.0  # the two outputs differ: the test tells them apart
    for weights in ("pytorch_state_dict", "torchscript"):
        pipeline = create_prediction_pipeline(load_model_description(path), weight_format=weights)
        got = predict(model=pipeline, inputs=x).members["output"].data.to_numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert doc["weights"]["pytorch_state_dict"]["architecture"]["kwargs"]["prior_only"] is True
    record = doc["config"][PACKAGE_KEY]["self_check"]
    assert record["output"] == "prior" and record["status"] == ("passed" if case == "chosen" else "failed")
    assert "## Self-check" in readme and "The package returns the prior mean" in readme
    assert "exported module returns the network's prior mean" in readme
    assert ("self-check passed" if case == "chosen" else "The check failed: the noise model is suspect") in readme
    assert not doc["description"].startswith("SUSPECT")


def test_packages_state_the_models_check(passing, packages, tmp_path):
    model, _ = passing
    assert model.check is not None and model.check.passed
    doc, readme, _ = _package(export_bmz(model, tmp_path / "passing"))
    assert f"{model.check.line()}." in readme and "**SUSPECT" not in readme
    assert doc["config"][PACKAGE_KEY]["self_check"]["status"] == "passed"
    tiny, path, _ = packages["blindspot"]  # 3 steps from random weights: its check failed, exported with accept_suspect
    assert tiny.check is not None and not tiny.check.passed
    doc, readme, _ = _package(path)
    assert "**SUSPECT" in readme and doc["description"].startswith("SUSPECT")


@pytest.fixture
def suspect_file(packages, tmp_path):
    """The N2V model with a failed training check (its residual far from the noise), saved."""
    model, _, _ = packages["n2v"]
    copy = load_model(model.save(tmp_path / "n2v.sdmodel"))
    copy.summary["self_check"] = _failed("n2v_residual", 3.0)
    return copy.save(tmp_path / "suspect.sdmodel")


def test_a_suspect_model_is_refused_unless_accepted(suspect_file, tmp_path, capsys):
    out = tmp_path / "pkg.zip"
    assert main(["export", str(suspect_file), "-o", str(out)]) == EXIT_SUSPECT  # main: 0, written silently
    err = capsys.readouterr().err
    assert "failed its self-check" in err and "n2v_residual 3.00" in err and "--accept-suspect" in err, err
    assert "Traceback" not in err and not out.exists()
    with pytest.raises(SuspectModelError, match="accept_suspect=True"):
        export_bmz(load_model(suspect_file), out)
    assert not out.exists()
    assert main(["export", str(suspect_file), "-o", str(out), "--accept-suspect"]) == 0
    assert "marked suspect" in capsys.readouterr().err
    doc, readme, _ = _package(out)
    assert doc["description"].startswith("SUSPECT (failed its self-check")
    assert doc["config"][PACKAGE_KEY]["self_check"]["status"].startswith("suspect")
    assert "**SUSPECT: the result is suspect" in readme and "self-check FAILED (n2v_residual 3.00!)" in readme
