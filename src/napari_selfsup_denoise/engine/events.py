"""Small frozen progress events yielded by the training and prediction generators (built by keyword)."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np


@dataclass(frozen=True, kw_only=True)
class TrainProgress:
    """One optimiser step of training (or, with ``phase="checking"``, its end).

    Attributes
    ----------
    step, total : int
        Steps done and the (estimated, when a time budget binds) total.
    loss : float
        Training loss of this step.
    val_loss : float or None
        Latest validation loss (None before the first evaluation or without validation).
    elapsed, eta : float
        Seconds since the start and estimated seconds left.
    steps_per_s : float
        Recent throughput.
    lr : float
        Learning rate used for this step.
    preview : numpy.ndarray or None
        Denoised preview slice, present every few seconds when one was asked for.
    noise : dict or None
        Fitted noise-model parameters (blind-spot), in the image's intensity units.
    message : str
        Anything worth telling the user (divergence, restored weights, ...).
    phase : str
        "training" for a step; "checking" once, when training has ended (its budget, Stop or
        divergence) and the final validation and the self-check run before the model is returned
        (the figures are the last step's).
    """

    step: int
    total: int
    loss: float
    val_loss: float | None
    elapsed: float
    eta: float
    steps_per_s: float
    lr: float = 0.0
    preview: np.ndarray | None = field(default=None, repr=False)
    noise: dict[str, float] | None = None
    message: str = ""
    phase: str = "training"


@dataclass(frozen=True, kw_only=True)
class PredictProgress:
    """One tile of prediction done, or (``done=0``, the first event) prediction started.

    Attributes
    ----------
    done, total : int
        Tiles done and tiles in all; ``done=0`` is yielded once, before the first forward pass.
    pixels_done, pixels_total : int
        Output pixels written so far and in all (per channel).
    elapsed, eta : float
        Seconds since the start and estimated seconds left.
    info : dict
        Extra facts (tile size after out-of-memory back-off, ...).
    """

    done: int
    total: int
    pixels_done: int
    pixels_total: int
    elapsed: float
    eta: float
    info: dict[str, Any] = field(default_factory=dict)


R = TypeVar("R")


def drain(gen: Generator[Any, None, R], on_event: Callable[[Any], None] | None = None) -> R:
    """Run a generator to its end, passing each event to ``on_event``; return its value."""
    while True:
        try:
            ev = next(gen)
        except StopIteration as fin:
            return fin.value
        if on_event is not None:
            on_event(ev)
