"""The widget's "Export to BioImage Model Zoo" button: dialog values, a worker, and Load reading the package."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import yaml

pytest.importorskip("bioimageio.spec", reason="the [bmz] extra is not installed")


@pytest.fixture(scope="module")
def model():
    """A tiny 2D N2V model (trained without Qt); it keeps a crop of its training image."""
    from napari_selfsup_denoise.api import train

    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    return train(
        img, algorithm="n2v", max_steps=3, max_seconds=None, patch_size=32, batch_size=4, base_channels=8, depth=1
    )


def test_dialog_offers_name_authors_and_licence(qtbot, model):
    from napari_selfsup_denoise._widgets._bmz import BmzDialog

    dialog = BmzDialog(model)
    qtbot.addWidget(dialog)
    assert dialog.values()["name"] == "N2V 2D denoiser (napari-selfsup-denoise)"
    dialog.authors.setText("Ada Lovelace,  Alan Turing ,")
    dialog.licence.setCurrentText("MIT")
    assert dialog.values() == {"name": dialog.name.text(), "authors": ["Ada Lovelace", "Alan Turing"], "license": "MIT"}


def test_export_button_writes_a_package_that_load_reads_back(open_widget, qtbot, tmp_path, model, errors):
    _, _, widget = open_widget()
    box = widget.model_box
    assert not box.bmz_btn.isEnabled()
    widget.holder.set(model)
    assert box.bmz_btn.isEnabled()
    path = tmp_path / "shared.zip"
    assert box.export_bmz(path, name="Widget export", authors=["Ada Lovelace"], license="MIT") is not None
    qtbot.waitUntil(path.exists, timeout=120_000)  # written under a temporary name, renamed when complete
    assert errors() == []
    with zipfile.ZipFile(path) as zf:
        doc = yaml.safe_load(zf.read("rdf.yaml"))
    assert (doc["name"], doc["license"], doc["authors"]) == ("Widget export", "MIT", [{"name": "Ada Lovelace"}])
    widget.holder.set(None)
    loaded = box.load(path)
    assert widget.holder.model is loaded
    img = np.random.default_rng(1).normal(100, 10, (40, 48)).astype(np.float32)
    np.testing.assert_array_equal(loaded.denoise(img), model.denoise(img))


def test_export_errors_are_notified(open_widget, qtbot, tmp_path, model, errors):
    _, _, widget = open_widget()
    widget.holder.set(model)
    assert widget.model_box.export_bmz(tmp_path / "m.zip", name="bad/name") is not None
    qtbot.waitUntil(lambda: any("is not allowed by the BioImage Model Zoo" in m for m in errors()), timeout=120_000)
    assert any("letters" in m for m in errors()), errors()


def test_a_suspect_model_is_refused_unless_the_dialog_accepts_it(open_widget, qtbot, tmp_path, model, errors):
    from napari.utils.notifications import notification_manager

    from napari_selfsup_denoise._widgets._bmz import ACCEPT_TEXT, BmzDialog
    from napari_selfsup_denoise.engine import checks
    from napari_selfsup_denoise.engine.model import load_model

    suspect = load_model(model.save(tmp_path / "m.sdmodel"))
    bad = checks.Figure("n2v_residual", 3.0, *checks.RANGES["n2v_residual"])
    suspect.summary["self_check"] = checks.verdict([bad], "training", 1000, True).to_dict()
    dialog = BmzDialog(suspect)
    qtbot.addWidget(dialog)
    assert dialog.accept_suspect is not None and dialog.accept_suspect.text() == ACCEPT_TEXT  # main: no such option
    assert dialog.values()["accept_suspect"] is False
    _, _, widget = open_widget()
    widget.holder.set(suspect)
    path = tmp_path / "suspect.zip"
    assert widget.model_box.export_bmz(path, **dialog.values()) is not None
    qtbot.waitUntil(lambda: bool(errors()), timeout=120_000)
    assert any("failed its self-check" in m and ACCEPT_TEXT in m for m in errors()), errors()
    assert not path.exists()
    dialog.accept_suspect.setChecked(True)
    start = len(notification_manager.records)
    assert widget.model_box.export_bmz(path, **dialog.values()) is not None
    qtbot.waitUntil(path.exists, timeout=120_000)
    qtbot.waitUntil(lambda: len(notification_manager.records) > start, timeout=10_000)
    assert any("marked suspect" in str(n.message) for n in notification_manager.records[start:])
    with zipfile.ZipFile(path) as zf:
        assert "**SUSPECT:" in zf.read("README.md").decode()
        assert yaml.safe_load(zf.read("rdf.yaml"))["description"].startswith("SUSPECT")
