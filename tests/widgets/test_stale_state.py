"""The widgets never show or add something that belongs to another run or a removed layer (issue 10, item 16)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from napari_selfsup_denoise._widgets._model_box import IMAGE_PLACEHOLDER
from napari_selfsup_denoise.config import TrainConfig

DENOISE_WIDGET = "Denoise with a model"


@pytest.fixture(scope="module")
def model():
    """A tiny 2D N2V model (trained without Qt)."""
    from napari_selfsup_denoise.api import train

    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    cfg = TrainConfig(
        algorithm="n2v", max_steps=3, max_seconds=None, patch_size=32, batch_size=4, base_channels=8, depth=2
    )
    return train(img, cfg)


def test_settings_of_a_layer_without_a_file_name_a_placeholder(open_widget, tmp_path, noisy64, errors):
    viewer, _, widget = open_widget()
    widget.layer.set_layer(viewer.add_image(noisy64, name="cells"))  # like a napari sample: no source file
    path = widget.model_box.export(tmp_path / "settings.json")
    assert path is not None, errors()
    doc = json.loads(path.read_text())
    command = shlex.split(doc["command"])
    assert command[2] == IMAGE_PLACEHOLDER and "cells.tif" not in doc["command"]
    assert IMAGE_PLACEHOLDER in doc["comment"] and "not opened from a file" in doc["comment"]


def test_settings_of_a_file_layer_have_no_placeholder(open_widget, tmp_path, noisy64):
    import tifffile

    src = tmp_path / "cells.tif"
    tifffile.imwrite(src, noisy64)
    viewer, _, widget = open_widget()
    widget.layer.set_layer(viewer.open(str(src), plugin="napari")[0])
    doc = json.loads(widget.model_box.export(tmp_path / "settings.json").read_text())
    assert shlex.split(doc["command"])[2] == str(src) and "comment" not in doc


def test_no_result_for_a_layer_removed_while_denoising(results, open_widget, model, noisy64, wait_idle, errors):
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    widget.holder.set(model)
    layer = viewer.add_image(noisy64, name="cells")
    assert widget.section.denoise(layer) is not None, errors()
    viewer.layers.remove(layer)  # before the worker's result can reach the main thread
    wait_idle(widget.section)
    assert not results(viewer, "cells")
    assert errors() == []


def test_no_layer_picked_shows_no_progress_of_the_last_denoising(open_widget, model, noisy64, wait_idle, errors):
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    widget.holder.set(model)
    assert widget.section.denoise(viewer.add_image(noisy64, name="cells")) is not None, errors()
    wait_idle(widget.section)
    bar = widget.section.progress
    before = bar.text()
    assert bar.value() == bar.maximum() and before
    viewer.layers.clear()
    assert widget.section.layer.layer() is None
    assert bar.value() < 1 and bar.text() != before


def test_no_layer_picked_shows_no_progress_of_the_last_training(open_widget, small, noisy64, wait_idle, errors):
    viewer, _, widget = open_widget()
    small(widget, steps=3)
    widget.form.preview.setChecked(False)
    assert widget.start_training(viewer.add_image(noisy64, name="cells")) is not None, errors()
    wait_idle(widget)
    assert widget.status.text().startswith("done") and widget.progress.value() > 0
    viewer.layers.clear()
    assert widget.layer.layer() is None
    assert widget.progress.value() < 1 and widget.progress.text() in ("", "0%")
    assert widget.status.text() == "idle"


def test_widget_workers_leave_a_core_to_the_event_loop(open_widget, model, noisy64, wait_idle, monkeypatch):
    from napari_selfsup_denoise.engine import device

    monkeypatch.setattr(device, "_ui_threads", 0)
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    widget.holder.set(model)
    widget.section.denoise(viewer.add_image(noisy64, name="cells"))
    wait_idle(widget.section)
    assert device._ui_threads == 1  # thread_count() is then the available cores - 1
