"""Which algorithm a run uses, given its data: ``auto`` resolved with the noise's correlation measured first.

Every front end (the API, the command line, the widget) calls :func:`route_for` before it resolves
the starting weights, and :func:`.train.train` calls :func:`route` on an ``auto`` config it is given
directly, so the same measurement decides everywhere. An explicit choice is always kept; when the
noise is correlated and the choice leaves it unmasked, :attr:`Route.warning` says so before training
(a :class:`CorrelatedNoiseWarning`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..axes import guess_axes, spatial_ndim, validate_axes
from ..config import TrainConfig
from ..defaults import AUTO, algorithm_choice, correlated_pick
from .arrays import canonical
from .noise_correlation import NoiseCorrelation, measure_noise_correlation
from .start import InitialWeights

# Algorithms whose mask hides one pixel only: correlated noise leaks through its neighbours.
ONE_PIXEL = ("blindspot", "n2v", "n2v2")


class CorrelatedNoiseWarning(UserWarning):
    """The noise is correlated between neighbouring pixels and the chosen algorithm does not mask that axis."""


@dataclass(frozen=True)
class Route:
    """The configuration a run uses and why.

    Attributes
    ----------
    config : TrainConfig
        The configuration to train with: ``auto`` replaced by a concrete algorithm when the noise is
        correlated (with ``struct_axis`` for structN2V); otherwise as given.
    choice : str
        For ``auto``: what runs and why (``summary["algorithm_choice"]``); empty for an explicit choice.
    warning : str
        A plain warning when an explicit choice leaves correlated noise unmasked; empty otherwise.
    correlation : NoiseCorrelation or None
        The measurement (None when nothing was measured: Noise2Noise, or a model continued).
    """

    config: TrainConfig
    choice: str = ""
    warning: str = ""
    correlation: NoiseCorrelation | None = None


def _warning(cfg: TrainConfig, corr: NoiseCorrelation) -> str:
    """What to tell a person whose explicit ``cfg.algorithm`` leaves ``corr``'s axis unmasked ('' if it masks it)."""
    axis = corr.axis
    if axis is None or cfg.algorithm not in (*ONE_PIXEL, "structn2v"):
        return ""
    if cfg.algorithm == "structn2v":
        if axis in cfg.struct_axis.upper():  # a line along it, or a cross through it (YX)
            return ""
        return (f"{corr.reason()}; structn2v masks along {cfg.struct_axis.upper()} here, so the noise along {axis} "
                f"still leaks: set struct_axis to {axis} (--set struct_axis='\"{axis}\"')")  # fmt: skip
    return (f"{corr.reason()}; {cfg.algorithm} was asked for and is used, but it may reproduce part of the "
            f"noise: structn2v along {axis} masks that axis (--algorithm structn2v --set "
            f"struct_axis='\"{axis}\"'), or leave the algorithm on auto")  # fmt: skip


def route(cfg: TrainConfig, canon: Any, ndim: int, measured: NoiseCorrelation | None = None) -> Route:
    """The configuration to train ``canon`` (canonical ``S, T, C, Z, Y, X``) with, in ``ndim`` spatial dimensions.

    ``auto`` stays ``auto`` (the per-2D/3D pick) unless the noise is correlated along an axis; then it
    becomes :func:`~..defaults.correlated_pick`'s algorithm along that axis. Noise2Noise is not measured.
    ``measured`` is the noise's correlation already measured on ``canon`` (a front end's :func:`route_for`);
    it is then not measured again.
    """
    if cfg.algorithm == "n2n":
        return Route(cfg)
    corr = measure_noise_correlation(canon) if measured is None else measured
    if cfg.algorithm != AUTO:
        return Route(cfg, "", _warning(cfg, corr), corr)
    if corr.axis is None:
        return Route(cfg, f"{algorithm_choice(AUTO, ndim)}; {corr.reason()}", "", corr)
    picked, why = correlated_pick(ndim)
    changes: dict[str, Any] = {"algorithm": picked}
    if picked == "structn2v":
        changes["struct_axis"] = corr.axis
    along = f" along {corr.axis}" if picked == "structn2v" else ""
    return Route(cfg.replace(**changes), f"{picked}{along} (auto: {corr.reason()}; {why})", "", corr)


def route_for(cfg: TrainConfig, data: Any) -> Route:
    """:func:`route` for an image as a front end holds it (axes from ``cfg.axes``, else guessed)."""
    axes = validate_axes(cfg.axes or guess_axes(tuple(data.shape)), len(data.shape))
    return route(cfg, canonical(data, axes), spatial_ndim(axes))


def start_after(start: InitialWeights | None, picked: str, net: Any) -> InitialWeights | None:
    """``start``, or random weights said plainly when it does not fit the network ``auto`` picked (``picked``).

    The front ends resolve the start after routing; this covers a caller of :func:`.train.train` that
    resolved the built-in prior for ``auto`` before the data chose another algorithm.
    """
    if start is None or start.state is None or not start.mismatch(net):
        return start
    return InitialWeights(None, {"kind": "random", "detail": f"random weights: auto picked {picked} for this "
                                 "image's noise, and the starting weights given are another network's"})  # fmt: skip
