"""Blocking Python API over the engine's generators."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .engine.events import TrainProgress, drain
from .engine.model import Model


def train(
    image: Any,
    config: TrainConfig | None = None,
    *,
    target: Any = None,
    stop: threading.Event | None = None,
    init: Model | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    **options: Any,
) -> Model:
    """Train a denoiser on ``image`` and return the :class:`Model`.

    Parameters
    ----------
    image : array-like
        Noisy data: numpy, zarr or dask array.
    config : TrainConfig, optional
        Base configuration; ``options`` override its fields.
    target : array-like, optional
        Second noisy acquisition for ``algorithm="n2n"``.
    stop : threading.Event, optional
        Set from another thread to end training early.
    init : Model, optional
        A model to continue training.
    on_progress : callable, optional
        Called with every :class:`TrainProgress`.
    **options
        Any :class:`TrainConfig` field, e.g. ``axes="ZYX"``, ``algorithm="blindspot"``,
        ``max_seconds=120``.

    Examples
    --------
    >>> model = train(noisy, axes="YX", max_seconds=60)  # doctest: +SKIP
    >>> clean = model.denoise(noisy)  # doctest: +SKIP
    """
    from .engine.train import train as train_gen

    cfg = (config or TrainConfig()).replace(**options) if options else (config or TrainConfig())
    return drain(train_gen(image, cfg, stop=stop, target=target, init=init), on_progress)
