"""Issue 10 audit items on the widget side: an image at another intensity scale, and BMZ export inside a store."""

from __future__ import annotations

import numpy as np
import pytest

DENOISE_WIDGET = "Denoise with a model"


@pytest.fixture(scope="module")
def model():
    """A tiny 2D N2V model trained (without Qt) on the blobs of ``noisy64``, seeded."""
    from napari_selfsup_denoise.api import train

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    img = (100 + 50 * np.sin(yy / 7.0) * np.cos(xx / 9.0) + rng.normal(0, 10, (64, 64))).astype(np.float32)
    common = {"max_steps": 5, "max_seconds": None, "patch_size": 32, "batch_size": 4, "base_channels": 8, "depth": 2}
    return train(img, axes="YX", algorithm="n2v", seed=0, **common)


def _warnings(start: int) -> list[str]:
    from napari.utils.notifications import NotificationSeverity, notification_manager

    records = notification_manager.records[start:]
    return [str(n.message) for n in records if n.severity == NotificationSeverity.WARNING]


def test_a_layer_at_ten_times_the_intensity_is_warned_about(results, open_widget, model, noisy64, wait_idle, errors):
    """Item 8: "Denoise with a model" on a layer 10x brighter than the training image says so and says to retrain."""
    from napari.utils.notifications import notification_manager

    viewer, _, widget = open_widget(DENOISE_WIDGET)
    widget.holder.set(model)
    viewer.add_image(noisy64, name="same")
    viewer.add_image(noisy64 * 10, name="bright")
    for name, warned in (("same", False), ("bright", True)):
        start = len(notification_manager.records)
        assert widget.section.denoise(viewer.layers[name]) is not None, errors()
        wait_idle(widget.section)
        assert errors() == []
        hits = [m for m in _warnings(start) if "intensity" in m and "retrain" in m]
        assert bool(hits) == warned, (name, _warnings(start))
        [out] = results(viewer, name)  # a warning, not a refusal: the result is still shown
        assert out.name.endswith("(suspect)") or not warned  # marked (the bright layer's intensities are far off)


def test_bmz_export_never_writes_inside_the_layer_store(open_widget, qtbot, tmp_path, model, errors):
    """Item 1: the widget's "Export to BioImage Model Zoo" refuses a package path inside the layer's Zarr store."""
    pytest.importorskip("bioimageio.spec", reason="the [bmz] extra is not installed")
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "cells.zarr"
    arr = zarr.create_array(str(src), shape=(64, 64), chunks=(32, 32), dtype="float32")
    arr[:] = np.random.default_rng(0).normal(100, 10, (64, 64))
    before = sorted(p.relative_to(src) for p in src.rglob("*"))
    viewer, _, widget = open_widget()
    widget.layer.set_layer(viewer.open(str(src), plugin="napari")[0])
    widget.holder.set(model)
    target = src / "model.zip"
    widget.model_box.export_bmz(target, name="Inside the store", authors=["Ada Lovelace"], license="MIT")
    qtbot.waitUntil(lambda: bool(errors()) or target.exists(), timeout=120_000)  # old code: the package was written
    assert any("would overwrite the input" in m for m in errors()), errors()
    assert not target.exists() and sorted(p.relative_to(src) for p in src.rglob("*")) == before
    np.testing.assert_array_equal(zarr.open_array(str(src))[:], arr[:])


def test_a_time_lapse_opened_from_its_file_trains_a_2d_model(open_widget, tmp_path, small, train_to_end):
    """Item 7: 30 frames (a plain stack that short is guessed ZYX) trained from an ImageJ TYX file give a 2D model."""
    tifffile = pytest.importorskip("tifffile")
    path = tmp_path / "movie.tif"
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:48, :48]
    clean = 300 + 200 * np.sin(yy / 5.0) * np.cos(xx / 7.0)
    movie = (clean + rng.normal(0, 30, (30, 48, 48))).clip(0).astype(np.uint16)
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    viewer, _, widget = open_widget()
    viewer.open(str(path), plugin="napari")  # as File > Open does
    widget.layer.set_layer(viewer.layers[0])
    small(widget, steps=3)
    train_to_end(widget)
    model = widget.holder.model
    assert model is not None and model.summary["steps"] == 3
    assert (model.ndim, model.axes) == (2, "TYX"), (model.ndim, model.axes)


def test_the_tile_box_offers_auto_or_at_least_the_command_line_minimum(open_widget, qtbot):
    """Item 15b: the tile box never holds 1-31 (the command line refuses them); stepping skips them."""
    from napari_selfsup_denoise.config import MIN_TILE

    _, _, widget = open_widget(DENOISE_WIDGET)
    box = widget.section.tile
    assert (box.value(), box.text()) == (0, "auto")
    box.stepUp()
    assert box.value() == MIN_TILE  # old code: 1
    box.stepDown()
    assert (box.value(), box.text()) == (0, "auto")  # old code: 31 from MIN_TILE
    box.setValue(4)
    assert box.value() == MIN_TILE  # old code: 4, passed on as PredictConfig(tile=4)
    box.lineEdit().setText("16")
    box.interpretText()  # as on Enter or leaving the field
    assert box.value() == MIN_TILE
    box.setValue(64)
    box.stepDown()
    assert box.value() == 63 and box.maximum() == 8192
