"""The widgets show the self-check: a failure as a warning notification, in the status line and on the result."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfsup_denoise.engine import checks

MARK = "selfsup_denoise"  # the result layer's metadata and a widget-written Zarr's attrs keep the check here


def _warnings(start):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    new = notification_manager.records[start:]
    return [str(n.message) for n in new if n.severity == NotificationSeverity.WARNING]


def _failing(model, sampler):
    bad = checks.Figure("prior_residual", 3.0, *checks.RANGES["prior_residual"])
    return checks.verdict([bad], "training", 1000, True)


def test_a_failed_check_is_shown_and_the_layer_marked(open_widget, noisy64, errors, small, monkeypatch, train_to_end):
    from napari.utils.notifications import NotificationSeverity, notification_manager

    monkeypatch.setattr("napari_selfsup_denoise.engine.train.check_training", _failing)
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=10)
    start = len(notification_manager.records)
    train_to_end(widget)
    status = widget.status.text()
    assert "self-check FAILED" in status and "prior_residual 3.00!" in status
    warned = [
        str(n.message) for n in notification_manager.records[start:] if n.severity == NotificationSeverity.WARNING
    ]
    assert any("the result is suspect" in m and "What to try" in m for m in warned), warned
    assert "cells denoised" not in viewer.layers  # main: "cells denoised", nothing in its metadata
    mark = viewer.layers["cells denoised (suspect)"].metadata[MARK]["self_check"]
    assert mark["status"] == "suspect" and any("prior_residual 3.00" in m for m in mark["messages"]), mark
    assert mark["figures"][0] == f"training: {widget.holder.model.check.line()}"
    assert widget.holder.model.check is not None and not widget.holder.model.check.passed


def test_a_passing_check_is_shown_in_the_status_line(open_widget, qtbot, errors, small, wait_idle):
    from napari.utils.notifications import notification_manager

    viewer, _, widget = open_widget()
    # Pure noise: 10 N2V steps pass the check there (on noisy64 they fail it: n2v_residual 5.55, which this
    # test's old assertion, "self-check" in the status, did not notice).
    viewer.add_image(np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32), name="cells")
    small(widget, steps=10)
    start = len(notification_manager.records)
    worker = widget.start_training()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    wait_idle(widget)
    assert "self-check passed" in widget.status.text() and "FAILED" not in widget.status.text()
    assert _warnings(start) == []
    assert viewer.layers["cells denoised"].metadata[MARK]["self_check"]["status"] == "passed"  # main: no mark


@pytest.fixture
def suspect_model(tmp_path):
    """A tiny N2V model whose training check failed (its residual far from the noise)."""
    from napari_selfsup_denoise.api import train

    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    model = train(img, algorithm="n2v", max_steps=3, max_seconds=None, patch_size=32, batch_size=4,
                  base_channels=8, depth=1)  # fmt: skip
    model.summary["self_check"] = _failing(None, None).to_dict()
    return model


def test_a_suspect_result_written_to_zarr_keeps_the_mark(open_widget, tmp_path, suspect_model, errors, wait_idle):
    zarr = pytest.importorskip("zarr")
    viewer, _, widget = open_widget("Denoise with a model")
    viewer.add_image(np.random.default_rng(1).normal(100, 10, (48, 48)).astype(np.float32), name="other")
    widget.holder.set(suspect_model)
    out_path = tmp_path / "other-denoised.zarr"
    widget.section.output.setText(str(out_path))
    assert widget.section.denoise(viewer.layers["other"]) is not None, errors()
    wait_idle(widget.section)
    assert errors() == []
    layer = viewer.layers["other denoised (suspect)"]  # main: "other denoised"
    assert layer.metadata[MARK]["self_check"]["status"] == "suspect"
    stored = zarr.open_array(str(out_path), mode="r").attrs[MARK]["self_check"]  # main: no such attribute
    assert stored == layer.metadata[MARK]["self_check"] and stored["output"] == "posterior"
