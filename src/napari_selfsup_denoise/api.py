"""Blocking Python API over the engine's generators."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from typing import Any

from .config import TrainConfig
from .engine.checks import SuspectResultWarning
from .engine.events import TrainProgress, drain
from .engine.model import Model


class PriorWarning(UserWarning):
    """The built-in prior was asked for but could not be used; training started from random weights."""


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
        A model to continue training (``start_from`` is then not used).
    on_progress : callable, optional
        Called with the :class:`TrainProgress` of every step (not the ``phase="checking"`` event that
        says training has ended).
    **options
        Any :class:`TrainConfig` field, e.g. ``axes="ZYX"``, ``algorithm="blindspot"``,
        ``max_seconds=120``, ``start_from="random"``.

    Notes
    -----
    The default ``algorithm="auto"`` picks per 2D / 3D (today blind-spot for both), unless
    the noise is correlated between neighbouring pixels (measured first): then structN2V
    along that axis. ``model.summary["algorithm_choice"]`` says which and why;
    ``algorithm="n2v"`` picks N2V (an explicit choice on correlated noise is kept, with a
    :class:`~.engine.route.CorrelatedNoiseWarning`).
    Blind-spot training starts from the built-in prior (``start_from="builtin"``, the
    default); where it is missing or does not fit, a :class:`PriorWarning` says so and
    training starts from random weights. ``model.summary["start"]`` records the start.
    When the model's own self-check at the end of training fails, a
    :class:`~.engine.checks.SuspectResultWarning` says what was found and what to try.

    Examples
    --------
    >>> model = train(noisy, axes="YX", max_seconds=60)  # doctest: +SKIP
    >>> clean = model.denoise(noisy)  # doctest: +SKIP
    """
    from .engine.route import route_for
    from .engine.train import train as train_gen
    from .prior import resolve_start

    cfg = (config or TrainConfig()).replace(**options) if options else (config or TrainConfig())
    # The start of what will run: auto measures the noise first (correlated noise: structN2V, no prior).
    routed = None if init is not None else route_for(cfg, image)  # train() reuses its measurement
    start = None if routed is None else resolve_start(routed.config, tuple(image.shape))
    if start is not None and start.source.get("fallback"):
        warnings.warn(str(start.source["detail"]), PriorWarning, stacklevel=2)

    def steps(ev: TrainProgress) -> None:
        if on_progress is not None and ev.phase == "training":
            on_progress(ev)

    model = drain(train_gen(image, cfg, stop=stop, target=target, init=init, start=start, routed=routed), steps)
    check = model.check
    if check is not None and not check.passed:  # the model's own check failed: a script that saves it must hear
        warnings.warn(f"self-check (training): {check.verdict}. What to try: {check.advice}.", SuspectResultWarning,
                      stacklevel=2)  # fmt: skip
    return model


def denoise(
    image: Any,
    axes: str | None = None,
    *,
    noise_model: str = "auto",
    tile: int | None = None,
    device: str = "auto",
    stop: threading.Event | None = None,
) -> Any:
    """Denoise ``image`` at once, without training: the built-in prior and a noise model fitted to it.

    The prior's network is used as shipped; the noise model (Gaussian or Poisson-Gaussian)
    is estimated from ``image``; the result is the posterior mean, same shape, float32, in
    the image's intensity scale. The self-check runs as for a trained model: a failure is a
    :class:`~.engine.checks.SuspectResultWarning` (the prior mean is returned when the
    noise model is the suspect part). Training a model on the image (:func:`train`) is
    usually better; this takes seconds.

    Parameters
    ----------
    image : array-like
        Noisy image (numpy, zarr or dask), one channel.
    axes : str, optional
        Its axes (letters of ``STCZYX``); guessed from the shape when omitted.
    noise_model : str
        ``auto``, ``gaussian``, ``poisson-gaussian`` or ``known:SIGMA``.
    tile, device : as in :meth:`Model.denoise`.
    stop : threading.Event, optional
        Set from another thread to end early.

    Raises
    ------
    PriorUnavailable
        When the built-in prior is not installed (train a model instead).

    Examples
    --------
    >>> quick = denoise(noisy, axes="YX")  # doctest: +SKIP
    """
    from .prior import zero_shot_model

    model = zero_shot_model(image, axes, noise_model=noise_model)
    return model.denoise(image, model.axes, tile=tile, device=device, stop=stop)
