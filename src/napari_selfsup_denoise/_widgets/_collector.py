"""Keep Python's full garbage collections short while a widget worker runs.

A full (generation 2) collection scans every object the interpreter tracks,
holding the interpreter lock: with napari and torch loaded that is about half a
million objects and a quarter of a second of CPU, during which napari's event
loop cannot run, whichever thread triggered it. A 3D or time-lapse run lasts
long enough to trigger one, and it was the longest event-loop gap between Train
and the result there (issue 10, item 13). While a widget worker runs, the
objects that existed when it started are frozen (:func:`gc.freeze`): full
collections then scan only what was made since, and collect it as usual. The
frozen objects return to the collector when the last worker ends; garbage cycles
among them (a layer removed during the run, say) are collected after that.
"""

from __future__ import annotations

import gc
from typing import Any

_running = 0


def running() -> int:
    """How many widget workers hold the collector's older objects frozen."""
    return _running


def hold_while(worker: Any) -> None:
    """Freeze the tracked objects until ``worker`` (a napari worker, not started yet) has finished.

    Main thread only. Workers overlap (training, Denoise now, Denoise with a
    model): the objects are frozen when the first starts and unfrozen when the
    last finishes.
    """
    global _running
    if _running == 0:
        gc.freeze()
    _running += 1
    worker.finished.connect(_release)


def _release() -> None:
    global _running
    _running -= 1
    if _running == 0:
        gc.unfreeze()
