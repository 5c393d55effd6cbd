"""End a prediction inside its forward pass, so that Stop and closing napari need not wait for a whole window.

The engine checks its stop event between forward passes; one pass over a 3D
window takes seconds on a CPU, and quitting napari waits for the worker
(issue 10, item 13). While :func:`stop_inside` is active, every module of the
network checks the event before it runs, in the thread that entered it only
(another thread may use the same network), so a pass ends after the layer in
progress and its output is dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Stopped(Exception):
    """The stop event was set during a forward pass; the pass was abandoned and its output is incomplete."""


@contextmanager
def stop_inside(net: Any, stopped: Callable[[], bool]) -> Iterator[None]:
    """While inside, any module of ``net`` called from this thread raises :class:`Stopped` once ``stopped()``.

    Parameters
    ----------
    net : torch.nn.Module
        The network the prediction runs.
    stopped : callable
        Returns True once the run should end (e.g. ``event.is_set``).
    """
    me = threading.get_ident()

    def _check(_module: Any, _args: Any) -> None:
        if threading.get_ident() == me and stopped():
            raise Stopped("stopped inside a forward pass")

    handles = [m.register_forward_pre_hook(_check) for m in net.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
