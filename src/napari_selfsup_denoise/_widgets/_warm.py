"""Import what training and denoising need in a background thread as soon as a dock opens.

Done first in the worker after Train, these imports stalled napari's event loop
(``benchmarks/bench_ui.py --why``: 263 and 151 ms gaps just after Train, with the
worker inside ``torch.optim.Adam(...)``, which imports ``torch._dynamo``). A
person reads the form for seconds before pressing Train: the imports are done by
then. This module imports no Qt, so a test can check the list without a display.
"""

from __future__ import annotations

import importlib
import threading

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


def import_engine() -> None:
    """Import :data:`MODULES` (in the calling thread)."""
    for name in MODULES:
        importlib.import_module(name)


def warm_up() -> threading.Thread:
    """Start :func:`import_engine` in a daemon thread, once per process; returns that thread."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=import_engine, name="selfsup-denoise-imports", daemon=True)
            _thread.start()
        return _thread
