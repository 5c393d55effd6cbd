"""Validated, frozen configuration dataclasses shared by the API, the CLI and the widgets."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .axes import validate_axes

ALGORITHMS = ("n2v", "n2v2", "structn2v", "blindspot", "n2n")
NORMALISATIONS = ("meanstd", "percentile")
PRECISIONS = ("auto", "fp32", "bf16")


class ConfigError(ValueError):
    """A configuration value is out of range or unknown."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


def check_noise_model(spec: str) -> str:
    """Validate a noise-model spec: ``auto``, ``gaussian``, ``poisson-gaussian`` or ``known:SIGMA``."""
    s = spec.strip().lower()
    if s in ("auto", "gaussian", "poisson-gaussian"):
        return s
    if s.startswith("known:"):
        try:
            sigma = float(s.split(":", 1)[1])
        except ValueError:
            sigma = -1.0
        _check(sigma > 0, f"noise model {spec!r}: SIGMA in 'known:SIGMA' must be a positive number")
        return s
    raise ConfigError(
        f"unknown noise model {spec!r}; use auto, gaussian, poisson-gaussian or known:SIGMA "
        "(SIGMA in the image's intensity units)"
    )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    The defaults are chosen for a minute-scale run on one image on a laptop CPU
    (see docs/benchmarks.md for the measurements behind them).

    Parameters
    ----------
    algorithm : str
        ``n2v``, ``n2v2``, ``structn2v``, ``blindspot`` or ``n2n`` (needs a target).
    axes : str, optional
        Axes of the training image (letters of ``STCZYX``); guessed when omitted.
    max_steps, max_seconds : int, float or None
        Budgets; training ends at whichever comes first. ``max_seconds=None``
        means steps only.
    patch_size, patch_size_z : int
        Patch edge in Y/X, and in Z for 3D data (clipped to the image).
    batch_size : int
        Patches per optimiser step.
    depth, base_channels, batch_norm, residual : network shape.
    learning_rate : float
        Peak Adam learning rate, reached after a linear warm-up
        (``warmup_fraction`` of the budget), then cosine decay.
    masked_fraction : float
        Fraction of pixels masked per patch (N2V family), sampled stratified.
    neighbourhood_radius : int
        Radius of the neighbourhood replacement values are drawn from.
    struct_axis, struct_span : structN2V mask: axis and total length (odd).
    augment : bool
        Random 90-degree rotations and flips in YX.
    val_fraction : float
        Share of the data held out to pick the best weights (0 disables).
    normalisation : str
        ``meanstd`` (per channel) or ``percentile`` (``percentiles`` low/high).
    noise_model : str
        Blind-spot only: ``auto``, ``gaussian``, ``poisson-gaussian`` or ``known:SIGMA``.
    device : str
        ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    precision : str
        ``auto`` (bf16 on CUDA and on CPUs with AMX, else fp32), ``fp32`` or ``bf16``.
    seed : int or None
        Seeds numpy and torch; with a step budget a CPU run is reproducible.
    preview_every_s : float
        Seconds between live previews when a preview image is given.
    """

    algorithm: str = "n2v"
    axes: str | None = None
    max_steps: int = 4000
    max_seconds: float | None = 300.0
    patch_size: int = 64
    patch_size_z: int = 16
    batch_size: int = 16
    depth: int = 3
    base_channels: int = 32
    batch_norm: bool = False
    residual: bool = False
    learning_rate: float = 4e-3
    warmup_fraction: float = 0.05
    masked_fraction: float = 0.015
    neighbourhood_radius: int = 2
    struct_axis: str = "X"
    struct_span: int = 5
    augment: bool = True
    val_fraction: float = 0.1
    normalisation: str = "meanstd"
    percentiles: tuple[float, float] = (1.0, 99.8)
    noise_model: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    seed: int | None = 0
    preview_every_s: float = 3.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            self.algorithm in ALGORITHMS,
            f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}",
        )
        if self.axes is not None:
            object.__setattr__(self, "axes", validate_axes(self.axes))
        _check(self.max_steps >= 1, "max_steps must be >= 1")
        _check(self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0 or None")
        _check(
            self.patch_size >= 8 and self.patch_size % 8 == 0,
            "patch_size must be a multiple of 8, >= 8",
        )
        _check(self.patch_size_z >= 4, "patch_size_z must be >= 4")
        _check(self.batch_size >= 1, "batch_size must be >= 1")
        _check(1 <= self.depth <= 5, "depth must be between 1 and 5")
        _check(self.base_channels >= 4, "base_channels must be >= 4")
        _check(0 < self.learning_rate < 1, "learning_rate must be in (0, 1)")
        _check(0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)")
        _check(0 < self.masked_fraction <= 0.25, "masked_fraction must be in (0, 0.25]")
        _check(1 <= self.neighbourhood_radius <= 5, "neighbourhood_radius must be 1..5")
        _check(self.struct_axis.upper() in "ZYX", "struct_axis must be Z, Y or X")
        _check(self.struct_span >= 3 and self.struct_span % 2 == 1, "struct_span must be odd, >= 3")
        _check(0 <= self.val_fraction < 0.5, "val_fraction must be in [0, 0.5)")
        _check(self.normalisation in NORMALISATIONS, f"normalisation must be one of {NORMALISATIONS}")
        lo, hi = self.percentiles
        _check(0 <= lo < hi <= 100, "percentiles must satisfy 0 <= low < high <= 100")
        object.__setattr__(self, "noise_model", check_noise_model(self.noise_model))
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        _check(self.preview_every_s > 0, "preview_every_s must be > 0")
        object.__setattr__(self, "percentiles", (float(lo), float(hi)))

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied (validated)."""
        return from_dict({**to_dict(self), **changes})


@dataclass(frozen=True)
class PredictConfig:
    """How to run tiled prediction.

    Parameters
    ----------
    tile : int or None
        Tile edge (Y/X) in pixels; ``None`` picks it from available memory.
    tta : bool
        Average the 8 rotations/flips in YX (slower, slightly better).
    device, precision : as in :class:`TrainConfig`.
    output : str
        Blind-spot models: ``posterior`` (default), ``prior`` (the network's
        mean alone).
    uncertainty : bool
        Blind-spot models: also return the posterior standard deviation.
    """

    tile: int | None = None
    tta: bool = False
    device: str = "auto"
    precision: str = "auto"
    output: str = "posterior"
    uncertainty: bool = False

    def __post_init__(self) -> None:
        _check(self.tile is None or self.tile >= 4, "tile must be >= 4 pixels or None")
        _check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        _check(self.output in ("posterior", "prior"), "output must be 'posterior' or 'prior'")


def to_dict(cfg: TrainConfig | PredictConfig) -> dict[str, Any]:
    """Plain JSON-able dict of a config."""
    d = dataclasses.asdict(cfg)
    if "percentiles" in d:
        d["percentiles"] = list(d["percentiles"])
    return d


def from_dict(d: dict[str, Any], cls: type = TrainConfig) -> Any:
    """Build a config from a dict, rejecting unknown keys with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    d = dict(d)
    if "percentiles" in d:
        d["percentiles"] = tuple(d["percentiles"])
    _check_types(cls, d)
    try:
        return cls(**d)
    except TypeError as exc:  # a value of a type the checks above do not cover
        raise ConfigError(f"invalid {cls.__name__} value ({exc})") from exc


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def _check_types(cls: type, d: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the option whose value has the wrong type (``depth="abc"``)."""
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        v, kinds = d[f.name], [k.strip() for k in str(f.type).split("|")]
        allowed = tuple(t for k in kinds for t in _TYPES.get(k, ()))
        if not allowed or (v is None and "None" in kinds):
            continue
        if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
            raise ConfigError(f"{f.name} must be {' or '.join(kinds)}, got {v!r}")


def to_json(cfg: TrainConfig | PredictConfig) -> str:
    """Serialise a config to JSON."""
    return json.dumps(to_dict(cfg), sort_keys=True)
