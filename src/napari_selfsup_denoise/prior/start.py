"""Resolve ``TrainConfig.start_from`` (``builtin``, ``random`` or a model file) into the starting weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..axes import guess_axes, spatial_ndim, validate_axes
from ..config import ConfigError, ResolvedConfig, TrainConfig, from_dict, resolve_defaults
from ..engine.model_file import read_metadata, read_weights
from ..engine.start import InitialWeights, network_state
from .builtin import PRIORS, PriorUnavailable, load_prior

RANDOM_AFTER = "training starts from random weights"


def _random(detail: str, *, fallback: bool = False) -> InitialWeights:
    return InitialWeights(None, {"kind": "random", "detail": detail, **({"fallback": True} if fallback else {})})


def _shape_of(cfg: ResolvedConfig) -> str:
    return f"depth {cfg.depth}, {cfg.base_channels} base channels"


def _network(cfg: ResolvedConfig, ndim: int, channels: int) -> Any:
    from ..engine.methods import get_method

    return get_method(cfg).build(ndim, channels)


def _builtin(cfg: ResolvedConfig, ndim: int, channels: int) -> InitialWeights:
    if (cfg.algorithm, ndim) not in PRIORS:
        return _random(f"random weights: there is no built-in prior for {cfg.algorithm} in {ndim}D")
    try:
        prior = load_prior(cfg.algorithm, ndim)
    except PriorUnavailable as exc:
        return _random(f"{exc}; {RANDOM_AFTER}", fallback=True)
    if channels != prior.channels:
        return _random(f"the built-in prior is for {prior.channels}-channel images and this image has {channels}; "
                       f"{RANDOM_AFTER}", fallback=True)  # fmt: skip
    why = prior.weights.mismatch(_network(cfg, ndim, channels))
    if why:
        return _random(f"the built-in prior {prior.name} is a {_shape_of(prior.config)} network and this run asks "
                       f"for {_shape_of(cfg)} ({why}); {RANDOM_AFTER} (leave depth and base_channels at their "
                       "defaults to fine-tune the prior, or set start_from=random)", fallback=True)  # fmt: skip
    return prior.weights


def _from_file(spec: str, cfg: ResolvedConfig, ndim: int, channels: int) -> InitialWeights:
    path = Path(os.path.expanduser(spec))
    meta = read_metadata(path)  # ModelFileError (missing, a pickle, not ours) says what is wrong
    theirs = resolve_defaults(from_dict(meta["config"]), int(meta["ndim"]))
    if theirs.algorithm != cfg.algorithm or int(meta["ndim"]) != ndim or int(meta["channels"]) != channels:
        raise ConfigError(f"start_from={spec}: that model is {theirs.algorithm}, {meta['ndim']}D, "
                          f"{meta['channels']} channel(s); this run is {cfg.algorithm}, {ndim}D, {channels} "
                          "channel(s). Fine-tuning needs the same algorithm, dimensions and channels")  # fmt: skip
    weights = InitialWeights(network_state(read_weights(path)), {})
    why = weights.mismatch(_network(cfg, ndim, channels))
    if why:
        raise ConfigError(f"start_from={spec}: that model is a {_shape_of(theirs)} network and this run asks for "
                          f"{_shape_of(cfg)} ({why}); set depth and base_channels to the model's")  # fmt: skip
    steps = (meta.get("summary") or {}).get("steps")
    detail = f"the model file {path}" + (f" (trained {steps} steps)" if steps is not None else "")
    return InitialWeights(weights.state, {"kind": "file", "path": str(path.resolve()), "detail": detail})


def resolve_start(config: TrainConfig, shape: tuple[int, ...], device: str | None = None) -> InitialWeights:
    """The weights a run of ``config`` on an image of ``shape`` starts from, and where they came from.

    ``start_from="builtin"`` gives the shipped prior when the algorithm has one and it fits (same
    network shape and channels); otherwise random weights, with ``source["detail"]`` saying why and
    ``source["fallback"]`` set when a prior was expected but could not be used (missing, unreadable,
    another shape). ``random`` gives random weights; a path gives that model file's network.

    Parameters
    ----------
    config : TrainConfig
        The run's configuration (``axes`` guessed from ``shape`` when unset).
    shape : tuple of int
        Shape of the training image.
    device : str, optional
        The device training will use (for its defaults); ``config.device`` when omitted.

    Raises
    ------
    ConfigError, ModelFileError
        When ``start_from`` names a model file that is missing, unreadable or of another network.
    """
    if config.start_from == "random":
        return _random("random weights (start_from=random)")
    axes = validate_axes(config.axes or guess_axes(tuple(shape)), len(shape))
    ndim = spatial_ndim(axes)
    channels = int(shape[axes.index("C")]) if "C" in axes else 1
    from ..engine.device import pick_device

    dev = pick_device(device or config.device).type
    cfg = resolve_defaults(config.replace(axes=axes), ndim, dev)
    if config.start_from == "builtin":
        return _builtin(cfg, ndim, channels)
    return _from_file(config.start_from, cfg, ndim, channels)
