"""3D stacks, multi-channel and RGB layers train and denoise through the widget."""

from __future__ import annotations

import numpy as np


def _noisy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).sum(axis=0)
    return (100 + 20 * np.sin(grid / 5.0) + rng.normal(0, 8, shape)).astype(np.float32)


def test_3d_stack_trains_a_3d_model_and_keeps_the_voxel_size(results, open_widget, qtbot, errors, small, wait_idle):
    viewer, _, widget = open_widget()
    viewer.add_image(_noisy((8, 48, 48)), name="stack", scale=(0.5, 0.2, 0.2))
    assert widget.form.axes.text() == "ZYX"
    small(widget, steps=5)
    widget.start_training()
    wait_idle(widget)
    assert errors() == []
    assert widget.holder.model.ndim == 3
    [out] = results(viewer, "stack")
    assert out.data.shape == (8, 48, 48)
    np.testing.assert_allclose(out.scale, (0.5, 0.2, 0.2))


def test_multichannel_layer_with_edited_axes(results, open_widget, qtbot, errors, small, wait_idle):
    viewer, _, widget = open_widget()
    data = _noisy((2, 48, 48))
    data[1] *= 3
    viewer.add_image(data, name="two channels")
    assert widget.form.axes.text() == "ZYX"  # the guess; the user says these are channels
    widget.form.axes.setText("CYX")
    small(widget, steps=5)
    widget.start_training()
    wait_idle(widget)
    assert errors() == []
    assert widget.holder.model.channels == 2
    out = results(viewer, "two channels")[0].data
    assert out.shape == data.shape
    assert out[1].mean() > 2 * out[0].mean()  # channels keep their own intensity scale


def test_rgb_layer_is_read_as_yxc(results, open_widget, qtbot, errors, small, wait_idle):
    viewer, _, widget = open_widget()
    rgb = np.clip(_noisy((48, 48, 3)), 0, 255).astype(np.uint8)
    viewer.add_image(rgb, name="photo", rgb=True)
    assert widget.form.axes.text() == "YXC"
    small(widget, steps=5)
    widget.start_training()
    wait_idle(widget)
    assert errors() == []
    [out] = results(viewer, "photo")
    assert out.rgb and out.data.shape == rgb.shape


def test_no_uncertainty_layer_is_offered_until_calibrated(open_widget):
    _, _, widget = open_widget()
    widget.form.set_algorithm("blindspot")
    assert not widget.form.uncertainty.isVisibleTo(widget)
    assert not widget.denoise.uncertainty.isVisibleTo(widget)
