"""The train dock's Denoise now button (the built-in prior, no training) and its 'start from' setting."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfsup_denoise.prior import builtin


@pytest.fixture
def stand_in_prior(tmp_path, monkeypatch):
    """An untrained blind-spot 2D network at the default architecture where the package looks for its prior."""
    import torch

    from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
    from napari_selfsup_denoise.engine.data import Normalisation
    from napari_selfsup_denoise.engine.methods import get_method
    from napari_selfsup_denoise.engine.model import Model

    torch.manual_seed(0)
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX"), 2)
    model = Model(get_method(cfg).build(2, 1), cfg, "YX", 2, 1, Normalisation("meanstd", (0.0,), (1.0,)))
    model.summary = {"prior": {"version": "test"}}
    model.save(tmp_path / "blindspot_2d.sdmodel")
    builtin.load_prior.cache_clear()
    monkeypatch.setattr(builtin, "weights_folder", lambda: tmp_path)
    yield
    builtin.load_prior.cache_clear()


def test_denoise_now_adds_the_zero_shot_result_and_its_check(open_widget, noisy64, wait_for, errors):
    """The shipped prior on noisy64: its check passes (with the stand-in's random weights it failed, unnoticed)."""
    from napari.utils.notifications import NotificationSeverity as Severity
    from napari.utils.notifications import notification_manager

    start = len(notification_manager.records)
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells", scale=(2.0, 2.0))
    now = widget.denoise_now
    wait_for(now.button.isEnabled)  # once the background imports are done (_warm.py); at once after other tests
    at_insert: list[tuple[bool, list[str]]] = []
    viewer.layers.events.inserted.connect(
        lambda e: at_insert.append((e.value.visible, [x.name for x in viewer.layers.selection]))
    )
    now.button.click()
    assert not now.button.isEnabled()  # while it runs
    wait_for(now.is_idle)
    assert errors() == []
    out = viewer.layers["cells denoised (zero-shot)"]
    assert at_insert == [(False, ["cells"])]  # old code: [(True, ["cells"])], selected in the same turn (item 13)
    assert out.visible and list(viewer.layers.selection) == [out]
    assert out.data.shape == noisy64.shape and out.data.dtype == np.float32
    np.testing.assert_allclose(out.scale, (2.0, 2.0))
    assert "zero-shot (noise sigma" in now.status.text() and "self-check passed" in now.status.text()
    warned = [str(n.message) for n in notification_manager.records[start:] if n.severity == Severity.WARNING]
    assert warned == [] and out.metadata["selfsup_denoise"]["self_check"]["status"] == "passed"
    assert now.button.isEnabled()


def test_denoise_now_without_the_prior_says_so(results, open_widget, noisy64, tmp_path, monkeypatch, wait_for, errors):
    builtin.load_prior.cache_clear()
    monkeypatch.setattr(builtin, "weights_folder", lambda: tmp_path)
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    widget.denoise_now.button.click()
    wait_for(lambda: widget.denoise_now.worker is None)
    assert any("needs the built-in prior" in e and "not installed" in e for e in errors())
    assert not results(viewer, "cells", "denoised (zero-shot)")
    builtin.load_prior.cache_clear()


def test_start_from_shows_what_training_will_start_from(open_widget, stand_in_prior):
    _, _, widget = open_widget()
    form = widget.form
    form.set_algorithm("blindspot")
    assert form.config().start_from == "builtin"
    assert "built-in prior blindspot_2d (version test" in form.start_from.resolved.text()
    form.net_depth.setValue(3)  # another network: the prior cannot be used, and the field says why
    assert "random weights" in form.start_from.resolved.text()
    form.set_algorithm("n2v")
    assert "no built-in prior for n2v" in form.start_from.resolved.text()
    form.start_from.set_value("random")
    assert form.config().start_from == "random"


def _prior_chosen():
    from napari_selfsup_denoise.engine.checks import OutputChoice

    return OutputChoice("prior", 0.40, 0.20, 0.05, 1000, False)


@pytest.mark.parametrize(
    ("figure", "value", "choice", "shown", "warned"),
    [
        ("calibration", 1.0, None, ["self-check passed (calibration 1.00"], []),
        ("calibration", 1.0, _prior_chosen, ["self-check passed (calibration 1.00", "returns the prior mean"], []),
        (
            "residual",
            5.0,
            None,
            ["self-check FAILED (residual 5.00!)", "the prior mean was returned"],
            ["self-check (image): the noise model is suspect", "What to try"],
        ),
    ],  # fmt: skip
    ids=["passed", "prior-mean-chosen", "failed"],
)
def test_denoise_now_shows_what_the_image_check_said(
    open_widget, noisy64, stand_in_prior, wait_for, errors, monkeypatch, figure, value, choice, shown, warned
):
    """A zero-shot model has no check from training: its status line shows the check on the layer, pass or fail."""
    import dataclasses

    from napari.utils.notifications import NotificationSeverity, notification_manager

    from napari_selfsup_denoise.engine import checks

    check = checks.verdict([checks.figure(figure, value)], "image", 1000, False)
    check = dataclasses.replace(check, choice=choice() if choice else None)
    monkeypatch.setattr(checks, "check_image", lambda *args, **kwargs: check)
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    start = len(notification_manager.records)
    widget.denoise_now.button.click()
    wait_for(widget.denoise_now.is_idle)
    assert errors() == []
    status = widget.denoise_now.status.text()
    assert all(s in status for s in shown), status
    assert "older model file" not in status, status
    records = notification_manager.records[start:]
    warnings = [str(n.message) for n in records if n.severity == NotificationSeverity.WARNING]
    assert all(any(w in m for m in warnings) for w in warned) and (warnings == []) == (warned == []), warnings
    assert "cells denoised (zero-shot)" in viewer.layers
