"""Import torch and the engine in a background thread as soon as a dock opens.

Importing torch blocked napari for over a second when the dock's device line
did it on the main thread (``benchmarks/bench_ui.py``: ``open_s`` 1.38 s), and the
engine's first-run imports done in the worker after Train stalled the event loop
(263 and 151 ms gaps, with the worker inside ``torch.optim.Adam(...)``, which
imports ``torch._dynamo``). The docks start :func:`warm_up` when they open: it
imports :data:`FIRST` (what the device line, the defaults and the "start from"
line need), asks torch once whether a GPU is there, sets :func:`ready`, then
imports :data:`MODULES`. Until :func:`ready`, the docks show "checking…" and
touch nothing that imports torch; until :func:`warmed`, Train and Denoise now
say "(loading…)" and cannot be pressed. This module imports no Qt at import time, so a
test can check the lists without a display.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from typing import Any

# What a dock shows right after it opens: the device line, the device's defaults, the built-in prior's line.
FIRST = ("torch", "napari_selfsup_denoise.engine.device", "napari_selfsup_denoise.prior")

# Everything outside the standard library that a first run imports: torch._dynamo (imported when the first
# optimiser is built), torch.profiler._cupti_monitor (its first zero_grad), numpy.ma (numpy's first quantile),
# the engine (training, prediction, self-checks, both algorithms) and the built-in prior.
MODULES = (
    "torch._dynamo",
    "torch.profiler._cupti_monitor",
    "numpy.ma",
    "napari_selfsup_denoise.engine.train",
    "napari_selfsup_denoise.engine.predict",
    "napari_selfsup_denoise.engine.checks",
    "napari_selfsup_denoise.engine.methods.blindspot",
    "napari_selfsup_denoise.engine.preview_cost",
    "napari_selfsup_denoise.prior",
    "napari_selfsup_denoise.prior.zero_shot",
)

_lock = threading.Lock()
_thread: threading.Thread | None = None
_ready = threading.Event()
_done = threading.Event()
# The longest wait, when napari quits, for the imports in progress (a cold torch import takes a few seconds).
QUIT_WAIT_S = 30.0


def probe_devices() -> None:
    """Import :data:`FIRST` and ask torch once whether CUDA is there (the answer is cached)."""
    for name in FIRST:
        importlib.import_module(name)
    import torch

    torch.cuda.is_available()


def import_engine() -> None:
    """Import :data:`MODULES` (in the calling thread)."""
    for name in MODULES:
        importlib.import_module(name)


def _imported(name: str) -> bool:
    """Whether ``name`` is in ``sys.modules`` and no thread is still running its code."""
    module = sys.modules.get(name)
    return module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False)


def ready() -> bool:
    """True once :data:`FIRST` is imported: the main thread may then use torch without waiting."""
    return _ready.is_set() or all(_imported(name) for name in FIRST)


def warmed() -> bool:
    """True once :data:`FIRST` and :data:`MODULES` are imported (or the warm-up failed: the error comes later).

    The docks' Train and Denoise now buttons wait for it: pressed earlier, Train imported torch on
    the main thread, which waited for the background import (napari froze 1.5-2.4 s), and the rest
    of the warm-up (``torch._dynamo``: C calls of 0.1-0.3 s that hold the interpreter lock) fell
    inside the run's first seconds.
    """
    return _done.is_set() or all(_imported(name) for name in FIRST + MODULES)


def _run() -> None:
    try:
        try:
            probe_devices()
        finally:
            _ready.set()  # a failed import is then raised where the dock uses it, with its message
        import_engine()
    finally:
        _done.set()


def _finish_before_quit() -> None:
    """Make quitting the Qt application wait for the imports in progress.

    An import cut off by the interpreter's exit (napari closed a second or two
    after a dock opened) printed a traceback on the terminal: torch's exit hooks
    had unregistered its operators, or the threading module refused a new exit
    hook. Qt's ``aboutToQuit`` comes while the interpreter is still whole.
    """
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    if app is not None:
        app.aboutToQuit.connect(lambda: _thread is not None and _thread.join(QUIT_WAIT_S))


def warm_up() -> threading.Thread:
    """Start :func:`probe_devices` then :func:`import_engine` in a daemon thread, once per process; returns it."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="selfsup-denoise-imports", daemon=True)
            _thread.start()
            _finish_before_quit()
        return _thread


def when_ready(parent: Any, callback: Callable[[], None], every_ms: int = 50, test: Callable[[], bool] = ready) -> None:
    """Call ``callback`` on the main thread once ``test()`` (:func:`ready` by default; at once if it is already).

    ``parent`` owns the poll timer.
    """
    if test():
        callback()
        return
    from qtpy.QtCore import QTimer

    timer = QTimer(parent)
    timer.setInterval(every_ms)

    def _poll() -> None:
        if test():
            timer.stop()
            timer.deleteLater()
            callback()

    timer.timeout.connect(_poll)
    timer.start()
