"""Exported packages pass bioimageio.core's own model test and reproduce our prediction."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml


def _official_test(path):
    from bioimageio.core import test_model

    summary = test_model(path)
    failed = [d.name for d in summary.details if d.status == "failed"]
    assert summary.status == "passed", f"bioimageio test failed: {failed}"
    return summary


@pytest.mark.slow
@pytest.mark.parametrize("case", ["n2v", "blindspot"])
def test_package_passes_the_official_model_test(packages, case):
    _, path, _ = packages[case]
    summary = _official_test(path)
    tested = {d.name for d in summary.details}
    assert any("Reproduce test outputs" in n and "torchscript" in n for n in tested)
    assert any("Reproduce test outputs" in n and "pytorch_state_dict" in n for n in tested)


@pytest.mark.slow
def test_3d_package_exports_and_passes_the_official_model_test(packages):
    model, path, _ = packages["n2v_3d"]
    _official_test(path)
    with zipfile.ZipFile(path) as zf:
        doc = yaml.safe_load(zf.read("rdf.yaml"))
    assert [a.get("id", a["type"]) for a in doc["inputs"][0]["axes"]] == ["batch", "channel", "z", "y", "x"]
    assert doc["outputs"][0]["axes"][2]["halo"] == model.margin


@pytest.mark.parametrize("case", ["n2v", "blindspot"])
@pytest.mark.parametrize("weights", ["pytorch_state_dict", "torchscript"])
def test_bioimageio_prediction_reproduces_model_denoise(packages, case, weights):
    from bioimageio.core import create_prediction_pipeline, load_model_description, predict

    model, path, _ = packages[case]
    with zipfile.ZipFile(path) as zf, zf.open("test_input.npy") as fh:
        x = np.load(fh)
    pipeline = create_prediction_pipeline(load_model_description(path), weight_format=weights)
    got = predict(model=pipeline, inputs=x).members["output"].data.to_numpy()
    want = model.denoise(x[0], "CYX", device="cpu", precision="fp32")[None]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def test_package_describes_tiles_normalisation_and_training(packages):
    model, path, _ = packages["blindspot"]
    zf = zipfile.ZipFile(path)
    doc = yaml.safe_load(zf.read("rdf.yaml"))
    inp, out = doc["inputs"][0], doc["outputs"][0]
    assert inp["axes"][2]["size"] == {"min": 2 * model.margin + model.multiple, "step": model.multiple}
    assert inp["pad"] == {"mode": "reflect"}
    assert [a["halo"] for a in out["axes"][2:]] == [model.margin] * 2
    pre = next(p for p in inp["preprocessing"] if p["id"] == "fixed_zero_mean_unit_variance")
    assert pre["kwargs"]["mean"] == list(model.norm.offset)
    post = next(p for p in out["postprocessing"] if p["id"] == "scale_linear")
    assert post["kwargs"]["gain"] == list(model.norm.scale)
    assert doc["weights"]["pytorch_state_dict"]["architecture"]["callable"] == "BlindSpotDenoiser"
    readme = zf.read("README.md").decode()
    assert "noise_sigma" in readme and f"steps: {model.summary['steps']}" in readme
    assert {"cover.png", "architecture.py", "weights.pt", "weights_torchscript.pt"} <= set(zf.namelist())


def test_architecture_file_needs_nothing_of_ours(packages, monkeypatch):
    import io
    import sys

    import torch

    from napari_selfsup_denoise.export._arch import ALLOWED

    model, path, _ = packages["blindspot"]
    with zipfile.ZipFile(path) as zf:
        source = zf.read("architecture.py").decode()
        weights = torch.load(io.BytesIO(zf.read("weights.pt")), weights_only=True)
        doc = yaml.safe_load(zf.read("rdf.yaml"))
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert all(line.split()[1].split(".")[0] in ALLOWED for line in imports), imports
    monkeypatch.setitem(sys.modules, "napari_selfsup_denoise", None)  # any import of ours would now fail
    namespace = {"__name__": "architecture"}
    exec(compile(source, "architecture.py", "exec"), namespace)
    arch = doc["weights"]["pytorch_state_dict"]["architecture"]
    net = namespace[arch["callable"]](**arch["kwargs"])
    net.load_state_dict(weights, strict=True)


def test_architecture_file_copies_the_modules_a_net_imports_first():
    # The nets import each other (blindspot -> reach); a copied module whose relative import is not copied
    # before it would leave names undefined in the package, and two modules defining the same name (both nets
    # had a `_conv`) would run one's code with the other's helper, so such a file is refused instead.
    from napari_selfsup_denoise.engine.nets import blindspot, reach
    from napari_selfsup_denoise.export._arch import ArchitectureError, architecture_source

    with pytest.raises(ArchitectureError, match="not copied before it"):
        architecture_source([blindspot])
    with pytest.raises(ArchitectureError, match="both define"):  # one namespace: the second would replace the first
        architecture_source([reach, blindspot, reach])
    namespace: dict = {"__name__": "architecture"}
    exec(compile(architecture_source([reach, blindspot]), "architecture.py", "exec"), namespace)
    assert namespace["BlindSpotNet"](2, 1, 2, 4).min_patch == blindspot.BlindSpotNet(2, 1, 2, 4).min_patch
