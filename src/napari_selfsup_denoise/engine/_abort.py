"""End a forward or backward pass in progress once a stop event is set (issue 10, item 13: Stop < 1 s).

The engine checks its ``stop`` event between steps and forward passes; in 3D on
a CPU one training step or one prediction window takes seconds. While
:func:`stop_inside` is active, every module of the network checks the event
before it runs, and every activation it produces checks it again when the
backward pass reaches it, in the thread that entered the block only (another
thread may use the same network): the pass ends after the layer in progress
with :class:`Stopped`, and whatever it was computing is incomplete. A training
step that ended this way is undone with :func:`undo_step` (no optimiser update
was made; batch-norm statistics it touched are restored).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from ._training import RunState
    from .events import TrainProgress
    from .model import Model


class Stopped(Exception):
    """The stop event was set during a forward or backward pass; the pass was abandoned and its output is incomplete."""


@contextmanager
def stop_inside(net: nn.Module, stopped: Callable[[], bool]) -> Iterator[None]:
    """While inside, a pass through ``net`` started in this thread raises :class:`Stopped` once ``stopped()``.

    Parameters
    ----------
    net : torch.nn.Module
        The network (every submodule is watched).
    stopped : callable
        Returns True once the pass should end (e.g. ``event.is_set``).
    """
    me = threading.get_ident()

    def _check_grad(grad: torch.Tensor) -> None:
        if stopped():
            raise Stopped("stopped inside a backward pass")

    def _before(_module: nn.Module, _args: Any) -> None:
        if threading.get_ident() == me and stopped():
            raise Stopped("stopped inside a forward pass")

    def _after(_module: nn.Module, _args: Any, out: Any) -> None:
        if threading.get_ident() != me:
            return
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.requires_grad:  # reached again by this graph's backward pass
                t.register_hook(_check_grad)

    modules = list(net.modules())
    handles = [m.register_forward_pre_hook(_before) for m in modules]
    handles += [m.register_forward_hook(_after) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def watch(net: nn.Module, stop: threading.Event | None) -> AbstractContextManager[None]:
    """:func:`stop_inside` on ``stop.is_set`` (nothing is watched without an event)."""
    return nullcontext() if stop is None else stop_inside(net, stop.is_set)


def cut_event(net: nn.Module, stop: threading.Event | None) -> threading.Event | None:
    """``stop`` where a training step lasts long enough to be worth ending inside; None on CUDA.

    A CUDA step lasts milliseconds, while the hooks of :func:`stop_inside` add Python work to every
    module call; there the step runs to its end as before.
    """
    return None if next(net.parameters()).device.type == "cuda" else stop


def saved_buffers(net: nn.Module) -> list[torch.Tensor]:
    """Copies of ``net``'s buffers (batch-norm running statistics) before a step that may be abandoned."""
    return [b.detach().clone() for b in net.buffers()]


def undo_step(net: nn.Module, opt: torch.optim.Optimizer, saved: list[torch.Tensor]) -> None:
    """Undo what an abandoned training step changed before its optimiser update: buffers and gradients."""
    with torch.no_grad():
        for b, old in zip(net.buffers(), saved, strict=True):
            b.copy_(old)
    opt.zero_grad(set_to_none=True)


def step_or_stop(
    model: Model,
    opt: torch.optim.Optimizer,
    st: RunState,
    stop: threading.Event | None,
    one_step: Callable[[], TrainProgress],
) -> TrainProgress | None:
    """``one_step()`` (one training step), ended inside its forward or backward pass by ``stop``: None then.

    A step stopped before its optimiser update is undone (no update, batch-norm statistics restored);
    one stopped after it (in its validation or preview) is kept.
    """
    cut = cut_event(model.net, stop)
    step, saved = st.step, saved_buffers(model.net) if cut is not None else []
    try:
        with watch(model.net, cut):
            return one_step()
    except Stopped:
        if st.step == step:
            undo_step(model.net, opt, saved)
        model.net.train()  # a validation or preview cut short leaves eval mode on
        st.stopped = "stopped"
        return None
