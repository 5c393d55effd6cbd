"""The train widget shows the self-check: a failure as a warning notification and in the status line."""

from __future__ import annotations

from napari_selfsup_denoise.engine import checks


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
    assert "cells denoised" in viewer.layers
    assert widget.holder.model.check is not None and not widget.holder.model.check.passed


def test_a_passing_check_is_shown_in_the_status_line(open_widget, qtbot, noisy64, errors, small, wait_idle):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=10)
    worker = widget.start_training()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    wait_idle(widget)
    assert "self-check" in widget.status.text()
