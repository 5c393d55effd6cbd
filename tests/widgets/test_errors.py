"""Bad inputs and mid-run failures become plain notifications; the widget returns to idle."""

from __future__ import annotations

import numpy as np
import pytest


def _assert_idle(widget) -> None:
    assert widget.is_idle()
    assert widget.train_btn.isEnabled() and not widget.stop_btn.isEnabled()
    assert widget.form.isEnabled()


def test_labels_layer_is_not_offered_and_is_refused(open_widget, errors):
    viewer, _, widget = open_widget()
    labels = viewer.add_labels(np.zeros((64, 64), dtype=np.uint8), name="masks")
    assert widget.layer.layer() is None
    assert widget.start_training(labels) is None
    assert any("'masks' is a Labels layer" in m for m in errors()), errors()
    _assert_idle(widget)


def test_training_without_any_layer_says_what_to_do(open_widget, errors):
    _, _, widget = open_widget()
    widget.train_btn.click()
    assert any("pick an image layer" in m for m in errors()), errors()
    _assert_idle(widget)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (np.ones((1, 1), np.float32), "too small"),
        (np.full((64, 64), np.nan, np.float32), "NaN"),
    ],
    ids=["one-pixel", "nan"],
)
def test_unusable_images_give_a_clear_notification(
    results, open_widget, qtbot, errors, data, expected, small, wait_idle
):
    viewer, _, widget = open_widget()
    viewer.add_image(data, name="bad")
    small(widget, steps=5)
    widget.start_training()
    wait_idle(widget)
    assert any(expected in m for m in errors()), errors()
    assert not results(viewer, "bad")
    assert widget.status.text().startswith("failed")
    _assert_idle(widget)


def test_wrong_axes_give_a_clear_notification(open_widget, errors, noisy64):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    widget.form.axes.setText("ZYX")
    assert widget.start_training() is None
    assert any("'ZYX' have 3 letters but the image has 2 dimensions" in m for m in errors()), errors()
    _assert_idle(widget)


def test_removing_the_source_mid_run_notifies_and_keeps_model(
    results, open_widget, errors, noisy64, small, wait_idle, wait_for
):
    viewer, _, widget = open_widget()
    layer = viewer.add_image(noisy64, name="cells")
    small(widget, steps=None, seconds=120)
    widget.start_training()
    wait_for(lambda: len(widget.plot.steps) >= 2)
    viewer.layers.remove(layer)
    wait_idle(widget, timeout=5000)
    assert any("'cells' was removed while training" in m for m in errors()), errors()
    assert not results(viewer, "cells")
    assert widget.holder.model is not None  # never lose work: the model can still be saved
    _assert_idle(widget)


def test_noise2noise_needs_a_target_layer(results, open_widget, qtbot, errors, noisy64, small, wait_idle):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="a")
    small(widget, steps=5)
    widget.form.set_algorithm("n2n")
    widget.layer.set_layer(viewer.layers["a"])
    assert widget.start_training() is None
    assert any("Noise2Noise needs a target" in m for m in errors()), errors()
    second = noisy64 + np.random.default_rng(3).normal(0, 10, noisy64.shape).astype(np.float32)
    viewer.add_image(second, name="b")
    widget.layer.set_layer(viewer.layers["a"])
    widget.target.set_layer(viewer.layers["b"])
    widget.start_training()
    wait_idle(widget)
    assert widget.holder.model.algorithm == "n2n"
    assert len(results(viewer, "a")) == 1
