"""The Advanced form shows the values that will run, for every algorithm, in 2D and 3D; typed values are kept."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfsup_denoise._widgets._form import _TUNED
from napari_selfsup_denoise._widgets._job import resolve_config
from napari_selfsup_denoise.config import ALGORITHM_DEFAULTS, ALGORITHMS, RESOLVED_FIELDS
from napari_selfsup_denoise.defaults import pick_algorithm


def _shown(form) -> dict:
    return {name: getattr(form, attr).value() for name, attr in _TUNED.items()}


def _image(ndim: int) -> np.ndarray:
    shape = (8, 48, 48) if ndim == 3 else (48, 48)
    return np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)


@pytest.mark.parametrize("ndim", [2, 3])
def test_form_shows_the_config_the_training_loop_receives(open_widget, ndim):
    viewer, _, widget = open_widget()
    layer = viewer.add_image(_image(ndim), name="img")
    assert widget.form.axes.text() == ("ZYX" if ndim == 3 else "YX")
    for algorithm in ALGORITHMS:
        widget.form.set_algorithm(algorithm)
        received = resolve_config(widget._request(layer), layer.data.shape)  # the TrainJob's config
        shown = _shown(widget.form)
        assert shown == pytest.approx({k: getattr(received, k) for k in RESOLVED_FIELDS}), algorithm
        assert shown == pytest.approx(ALGORITHM_DEFAULTS[pick_algorithm(algorithm, ndim)][ndim]), algorithm


def test_axes_change_refreshes_the_form(open_widget):
    _, _, widget = open_widget()
    form = widget.form
    form.set_algorithm("blindspot")
    for axes, ndim in (("YX", 2), ("ZYX", 3)):
        form.axes.setText(axes)
        want = ALGORITHM_DEFAULTS["blindspot"][ndim]
        shown = (form.net_depth.value(), form.batch_size.value(), form.patch_size.value())
        assert shown == (want["depth"], want["batch_size"], want["patch_size"]), axes
    assert ALGORITHM_DEFAULTS["blindspot"][2]["depth"] != ALGORITHM_DEFAULTS["blindspot"][3]["depth"]


def test_a_typed_batch_of_16_is_kept_for_blind_spot_and_runs(open_widget, noisy64, errors, wait_idle):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    form = widget.form
    form.set_algorithm("blindspot")
    assert form.batch_size.value() == 4
    form.batch_size.setValue(16)  # the person types 16, the N2V default
    form.set_algorithm("n2v")
    form.set_algorithm("blindspot")
    assert form.batch_size.value() == 16
    form.base_channels.setValue(8)
    form.set_budget(1, "steps")
    form.preview.setChecked(False)
    shown = _shown(form)
    assert widget.start_training() is not None, errors()
    wait_idle(widget)
    assert errors() == []
    ran = widget.holder.model.config
    assert {k: getattr(ran, k) for k in RESOLVED_FIELDS} == pytest.approx(shown)
    assert ran.batch_size == 16 and ran.depth == ALGORITHM_DEFAULTS["blindspot"][2]["depth"]
    assert "batch 16" in widget.model_box.label.text()


def test_continuing_shows_the_network_of_the_model_it_starts_from(open_widget, noisy64):
    from napari_selfsup_denoise import train

    viewer, _, widget = open_widget()
    layer = viewer.add_image(noisy64, name="cells")
    model = train(noisy64, axes="YX", algorithm="n2v2", max_steps=1, max_seconds=None, depth=2, base_channels=8)
    widget.holder.set(model)
    widget.form.set_algorithm("blindspot")
    widget.form.continue_training.setChecked(True)
    shown = _shown(widget.form)
    assert widget.form.key() == "n2v2" and (shown["depth"], shown["base_channels"]) == (2, 8)
    received = resolve_config(widget._request(layer), layer.data.shape)
    assert received.algorithm == "n2v2"
    assert {k: getattr(received, k) for k in RESOLVED_FIELDS} == pytest.approx(shown)


def test_automatic_is_the_default_and_says_what_it_picks(qtbot):
    from napari_selfsup_denoise._widgets._form import TrainForm

    form = TrainForm()
    qtbot.addWidget(form)
    assert form.key() == "auto" and form.config().algorithm == "auto"
    form.axes.setText("YX")
    assert form.algorithm_why.text().startswith("→ blindspot (auto: 2D: ") and form.noise_model.isEnabled()
    assert form.batch_size.value() == ALGORITHM_DEFAULTS["blindspot"][2]["batch_size"]
    form.axes.setText("ZYX")
    assert form.algorithm_why.text().startswith("→ blindspot (auto: 3D: ") and form.noise_model.isEnabled()
    assert form.batch_size.value() == ALGORITHM_DEFAULTS["blindspot"][3]["batch_size"]
    form.set_algorithm("n2v")  # one click away
    assert form.algorithm_why.text() == "" and form.config().algorithm == "n2v"
