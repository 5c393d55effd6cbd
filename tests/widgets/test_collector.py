"""While a widget worker runs, full garbage collections skip the objects older than it (issue 10, item 13).

A full collection of napari's and torch's ~500k objects held the interpreter
lock for about a quarter of a second, the longest event-loop gap of a 3D or
time-lapse run. These tests check which objects the collector's full passes
see (``gc.get_freeze_count``), not how long anything takes.
"""

from __future__ import annotations

import gc
from typing import Any

from napari_selfsup_denoise._widgets import _collector


class _Worker:
    """Stands in for a napari worker: a ``finished`` signal the test emits."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []
        self.finished = self

    def connect(self, callback: Any) -> None:
        self.callbacks.append(callback)

    def finish(self) -> None:
        for callback in self.callbacks:
            callback()


def test_overlapping_workers_keep_the_objects_frozen_until_the_last_ends(wait_for):
    wait_for(lambda: _collector.running() == 0)  # a worker of an earlier test may still be ending
    assert gc.get_freeze_count() == 0
    first, second = _Worker(), _Worker()
    _collector.hold_while(first)
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # this process's objects (pytest, numpy, napari...) are out of full collections
    _collector.hold_while(second)  # e.g. Denoise now while training
    first.finish()
    # still frozen (a frozen object freed by its reference count leaves the count, so not == frozen)
    assert gc.get_freeze_count() > frozen // 2 and _collector.running() == 1
    second.finish()
    assert gc.get_freeze_count() == 0 and _collector.running() == 0


def test_a_training_run_freezes_what_existed_at_train_and_releases_it(open_widget, noisy64, small, wait_idle, wait_for):
    wait_for(lambda: _collector.running() == 0)  # a worker of an earlier test may still be ending
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=5)
    widget.form.preview.setChecked(False)
    tracked = len(gc.get_objects())
    during: list[int] = []
    worker = widget.start_training()
    worker.yielded.connect(lambda _ev: during.append(gc.get_freeze_count()))
    wait_idle(widget)
    assert during and min(during) >= 0.9 * tracked  # old code: 0, every full collection scanned them all
    wait_for(lambda: gc.get_freeze_count() == 0)  # back to the collector once the run has ended
