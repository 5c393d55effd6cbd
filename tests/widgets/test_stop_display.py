"""Stop changes the dock at once, and every phase after it has its line (issue 10, item 13).

A Stop in 3D is seconds of work on a CPU (the step in progress, the model's
checks, the check on the image, the first tile); the dock must never show a
frozen "stopping…". No wall-clock: the tests record what the dock shows at each
event the worker sends, and hold a denoise in progress with an event. The bar
never goes into Qt's busy mode, whose animation repaints the whole window.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from napari_selfsup_denoise.config import TrainConfig
from napari_selfsup_denoise.engine.events import PredictProgress

DENOISE_WIDGET = "Denoise with a model"


def _held_predict(monkeypatch: pytest.MonkeyPatch, started: threading.Event) -> None:
    """The widgets' prediction (the one given a stop event) yields one of 4 tiles, then waits for Stop."""
    from napari_selfsup_denoise.engine import predict as engine

    real = engine.predict

    def _predict(model: Any, data: Any, pcfg: Any, *, stop: Any = None, **kwargs: Any) -> Any:
        if stop is None:  # the engine's own uses (preview, checks) run as they are
            return (yield from real(model, data, pcfg, **kwargs))
        yield PredictProgress(done=1, total=4, pixels_done=1, pixels_total=4, elapsed=0.0, eta=1.0)
        started.set()
        stop.wait(120)  # the denoise in progress, until Stop
        return np.zeros(data.shape, np.float32)

    monkeypatch.setattr(engine, "predict", _predict)


def _record(widget: Any, shown: Any) -> list[tuple[Any, Any]]:
    """(event, what the dock shows after its handler) for every event of the next run (wrapped before it starts)."""
    seen: list[tuple[Any, Any]] = []
    handler = widget._on_progress

    def _recording(ev: Any) -> None:
        handler(ev)
        seen.append((ev, shown()))

    widget._on_progress = _recording
    return seen


def _shown(widget: Any) -> tuple[str, str, str, str, bool]:
    return (
        widget.status.text(),
        widget.progress.format(),
        "busy" if widget.progress.maximum() == 0 else "bar",
        widget.stop_btn.text(),
        widget.stop_btn.isEnabled(),
    )


def test_stop_shows_at_once_what_it_finishes_then_each_phase(results, open_widget, noisy64, small, wait_idle, wait_for):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=None, seconds=120)
    widget.form.preview.setChecked(False)
    seen = _record(widget, lambda: _shown(widget))
    widget.start_training()
    wait_for(lambda: len(widget.plot.steps) >= 2)
    widget.stop_btn.click()
    status, bar, busy, button, enabled = _shown(widget)  # at once, before the worker has said anything
    assert widget._stops.train.is_set() and not widget._stops.predict.is_set()
    assert (button, enabled, busy) == ("Stopping…", False, "bar")
    assert bar == "stopping…"
    assert status.startswith("stopping: the training step in progress ends, then the model so far is validated")
    first = len(seen)
    wait_idle(widget)
    after = seen[first:]
    steps = [s for ev, s in after if type(ev).__name__ == "TrainProgress"]
    steps = [s for s in steps if s[1] != "checking the model…"]  # the engine's end-of-training event, if any
    assert all(s[0].startswith("stopping: ") and s[3] == "Stopping…" for s in steps)  # the line is kept
    phases = [(ev.name, s) for ev, s in after if type(ev).__name__ == "Phase"]
    assert [name for name, _ in phases] == ["image-check", "denoising"]
    (_, check), (_, denoising) = phases
    assert check[0] == "self-checking the model on this image…" and check[1] == "checking the model on this image…"
    assert check[3:] == ("Stop denoising", True)  # Stop now stops the denoising of the result
    assert denoising[1] == "denoising: first tile…"
    started = [s for ev, s in after if isinstance(ev, PredictProgress) and not ev.done]  # the engine's done=0
    assert [s[1] for s in started] == ["denoising: first tile…"]  # it changes nothing the Phase said
    tiles = [s for ev, s in after if isinstance(ev, PredictProgress) and ev.done]
    assert tiles and tiles[0][1].startswith("denoising: tile 1/")
    assert {s[2] for _, s in seen} == {"bar"}  # never Qt's busy mode
    assert widget.status.text().startswith("done") and len(results(viewer, "cells")) == 1
    assert (widget.stop_btn.text(), widget.stop_btn.isEnabled()) == ("Stop", False)


def test_stop_while_the_result_is_denoised_shows_at_once_and_adds_nothing(
    results, open_widget, noisy64, small, wait_idle, wait_for, monkeypatch
):
    started = threading.Event()
    _held_predict(monkeypatch, started)
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=3)
    widget.form.preview.setChecked(False)
    widget.start_training()
    wait_for(lambda: widget.progress.format().startswith("denoising: tile 1/4"))
    assert started.is_set() and widget.stop_btn.text() == "Stop denoising" and widget.stop_btn.isEnabled()
    widget.stop_btn.click()
    status, _, busy, button, enabled = _shown(widget)
    assert widget._stops.predict.is_set() and not widget._stops.train.is_set()
    assert (button, enabled, busy) == ("Stopping…", False, "bar")
    assert status.startswith("stopping: the denoising pass in progress ends; the model is kept")
    wait_idle(widget)
    assert widget.holder.model is not None and not results(viewer, "cells")
    assert widget.status.text().startswith("done")
    assert (widget.stop_btn.text(), widget.stop_btn.isEnabled()) == ("Stop", False)


def test_the_denoise_section_shows_its_phases_and_stop_at_once(
    results, open_widget, noisy64, wait_idle, wait_for, monkeypatch
):
    from napari_selfsup_denoise.api import train

    model = train(noisy64, TrainConfig(algorithm="n2v", max_steps=2, max_seconds=None, patch_size=32,
                                       batch_size=4, base_channels=8, depth=2))  # fmt: skip
    started = threading.Event()
    _held_predict(monkeypatch, started)
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    widget.holder.set(model)
    section = widget.section
    seen = _record(section, section.progress.format)
    assert section.denoise(viewer.add_image(noisy64, name="cells")) is not None
    wait_for(lambda: started.is_set() and section.progress.format().startswith("tile 1/4"))
    formats = [shown for _, shown in seen]
    assert formats[:2] == ["checking the model on this image…", "denoising: first tile…"]
    section.stop_btn.click()
    assert not section.stop_btn.isEnabled() and section.progress.maximum() > 0
    assert section.progress.format() == "stopping: the denoising pass in progress ends…"
    wait_idle(section)
    assert not results(viewer, "cells")
