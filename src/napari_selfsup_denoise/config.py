"""Validated, frozen configuration dataclasses shared by the API, the CLI and the widgets."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any

from ._option_checks import ConfigError, check, check_noise_model, check_start, check_types
from .axes import validate_axes
from .defaults import ALGORITHM_DEFAULTS, RESOLVED_FIELDS, batch_scaled_lr, device_defaults, pick_algorithm

ALGORITHMS = ("auto", "n2v", "n2v2", "structn2v", "blindspot", "n2n")
NORMALISATIONS = ("meanstd", "percentile")
PRECISIONS = ("auto", "fp32", "bf16")

# TrainConfig fields that have their own ``selfsup-denoise`` flag (the others go through ``--set KEY=VALUE``);
# the CLI parses with it and the widget's "Export settings" writes command lines with it.
_FLAGGED = ("algorithm", "axes", "max_steps", "patch_size", "batch_size", "noise_model", "start_from", "seed", "device")
CLI_FLAGS = {name: "--steps" if name == "max_steps" else "--" + name.replace("_", "-") for name in _FLAGGED}

MIN_TILE = 32  # smaller prediction tiles recompute the model's margin so often that they run many times slower
UNCERTAINTY_REMOVED = (
    "the uncertainty output is removed until it is calibrated: its standard deviation did not track the real "
    "error (on nuclei_pg30 it covered 47 % of the errors at 1 sd where 68 % are expected, and its correlation "
    "with the error was +0.08; see docs/benchmarks.md, issue 10 item 9)"
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    The defaults suit a minute-scale run on one image on a laptop CPU (docs/benchmarks.md has the
    measurements). Fields that default to None take their value from :data:`ALGORITHM_DEFAULTS` (per
    algorithm and 2D / 3D) when :func:`resolve_defaults` runs, first thing in training; a value given
    here is always kept.

    Parameters
    ----------
    algorithm : str
        ``auto`` (the default: per 2D / 3D as :data:`~.defaults.AUTO_PICKS` says, recorded in a model's
        ``summary["algorithm_choice"]``), ``n2v``, ``n2v2``, ``structn2v``, ``blindspot``, ``n2n`` (needs a target).
    axes : str, optional
        Axes of the training image (letters of ``STCZYX``); guessed when omitted.
    max_steps, max_seconds : int, float or None
        Budgets; training ends at whichever comes first. ``max_seconds=None``
        means steps only.
    patch_size, patch_size_z : int or None
        Patch edge in Y/X, and in Z for 3D data (clipped to the image).
    batch_size : int or None
        Patches per optimiser step.
    depth, base_channels : int or None
        Network shape.
    batch_norm, residual : bool
        Network options (U-Net).
    learning_rate : float or None
        Peak Adam learning rate, after a linear warm-up (``warmup_fraction`` of the budget, or at least
        50 steps and at most a quarter of it: :func:`~.engine._training.warmup_share`), then cosine
        decay. Unset with a larger ``batch_size`` than the algorithm's, it grows with the batch
        (:func:`~.defaults.batch_scaled_lr`). A run too short to warm up to a rate above the algorithm's,
        typed or grown, peaks lower; a typed rate lowered so is said in a ``ShortRunWarning`` and in the
        model's ``summary["message"]`` (docs/benchmarks.md, "Batch scaling").
    masked_fraction : float
        Fraction of pixels masked per patch (N2V family), sampled stratified.
    neighbourhood_radius : int
        Radius of the neighbourhood replacement values are drawn from.
    struct_axis, struct_span : structN2V mask: axis (``Y``; several, ``YX``, mask a cross) and total length (odd).
    augment : bool
        Random 90-degree rotations and flips in YX.
    val_fraction : float
        Share of the data held out to pick the best weights (0 disables).
    ema_decay : float
        Above 0, the weights validated and returned are a moving average of the trained ones with this
        decay (``engine._ema``); 0 (the default) validates the trained weights themselves.
    normalisation : str
        ``meanstd`` (per channel) or ``percentile`` (``percentiles`` low/high).
    noise_model : str
        Blind-spot only: ``auto``, ``gaussian``, ``poisson-gaussian`` or ``known:SIGMA``.
    start_from : str
        The network's starting weights: ``builtin`` (the shipped prior where the algorithm has one,
        else random weights; the default), ``random``, or the path of a model file of the same
        algorithm and network shape to fine-tune. The trained model's ``summary["start"]`` says which was used.
    device : str
        ``auto`` (cuda, then mps, then cpu), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
    precision : str
        ``auto`` (bf16 on CUDA and on CPUs with AMX, else fp32), ``fp32`` or ``bf16``.
    seed : int or None
        Seeds numpy and torch; with a step budget a CPU run is reproducible.
    preview_every_s : float
        Seconds between live previews when a preview image is given.
    """

    algorithm: str = "auto"
    axes: str | None = None
    max_steps: int = 4000
    max_seconds: float | None = 300.0
    patch_size: int | None = None
    patch_size_z: int | None = None
    batch_size: int | None = None
    depth: int | None = None
    base_channels: int | None = None
    batch_norm: bool = False
    residual: bool = False
    learning_rate: float | None = None
    warmup_fraction: float = 0.05
    masked_fraction: float = 0.015
    neighbourhood_radius: int = 2
    struct_axis: str = "X"
    struct_span: int = 5
    augment: bool = True
    val_fraction: float = 0.1
    ema_decay: float = 0.0
    normalisation: str = "meanstd"
    percentiles: tuple[float, float] = (1.0, 99.8)
    noise_model: str = "auto"
    start_from: str = "builtin"
    device: str = "auto"
    precision: str = "auto"
    seed: int | None = 0
    preview_every_s: float = 3.0

    def __post_init__(self) -> None:
        check(self.algorithm in ALGORITHMS, f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.axes is not None:
            object.__setattr__(self, "axes", validate_axes(self.axes))
        check(self.max_steps >= 1, "max_steps must be >= 1")
        check(self.max_seconds is None or self.max_seconds > 0, "max_seconds must be > 0 or None")
        self._check_network()
        check(0 <= self.warmup_fraction < 1, "warmup_fraction must be in [0, 1)")
        check(0 < self.masked_fraction <= 0.25, "masked_fraction must be in (0, 0.25]")
        check(1 <= self.neighbourhood_radius <= 5, "neighbourhood_radius must be 1..5")
        letters = self.struct_axis.upper()
        check(bool(letters) and set(letters) <= set("ZYX") and len(set(letters)) == len(letters),
              f"struct_axis must be Z, Y or X, or several of them (YX: a cross), got {self.struct_axis!r}")  # fmt: skip
        check(self.struct_span >= 3 and self.struct_span % 2 == 1, "struct_span must be odd, >= 3")
        check(0 <= self.val_fraction < 0.5, "val_fraction must be in [0, 0.5)")
        check(0 <= self.ema_decay < 1, "ema_decay must be in [0, 1)")
        check(self.normalisation in NORMALISATIONS, f"normalisation must be one of {NORMALISATIONS}")
        lo, hi = self.percentiles
        check(0 <= lo < hi <= 100, "percentiles must satisfy 0 <= low < high <= 100")
        object.__setattr__(self, "noise_model", check_noise_model(self.noise_model))
        object.__setattr__(self, "start_from", check_start(self.start_from))
        check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        check(self.preview_every_s > 0, "preview_every_s must be > 0")
        object.__setattr__(self, "percentiles", (float(lo), float(hi)))

    def _check_network(self) -> None:
        """Range checks of the per-algorithm fields (None means "the algorithm's default")."""
        p, pz, b, d, c, lr = (getattr(self, f) for f in RESOLVED_FIELDS)
        check(p is None or (p >= 8 and p % 8 == 0), "patch_size must be a multiple of 8, >= 8")
        check(pz is None or pz >= 4, "patch_size_z must be >= 4")
        check(b is None or b >= 1, "batch_size must be >= 1")
        check(d is None or 1 <= d <= 5, "depth must be between 1 and 5")
        check(c is None or c >= 4, "base_channels must be >= 4")
        check(lr is None or 0 < lr < 1, "learning_rate must be in (0, 1)")

    def replace(self, **changes: Any) -> TrainConfig:
        """Return a copy with ``changes`` applied (validated)."""
        return from_dict({**to_dict(self), **changes}, type(self))


@dataclass(frozen=True)
class ResolvedConfig(TrainConfig):
    """A :class:`TrainConfig` whose per-algorithm fields all hold values; :func:`resolve_defaults` makes it.

    The training loop, the methods and :class:`Model` take this type, so a config whose
    defaults were never filled in cannot reach them.
    """

    patch_size: int = field(kw_only=True)
    patch_size_z: int = field(kw_only=True)
    batch_size: int = field(kw_only=True)
    depth: int = field(kw_only=True)
    base_channels: int = field(kw_only=True)
    learning_rate: float = field(kw_only=True)


@dataclass(frozen=True, kw_only=True)
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
        Blind-spot models: ``posterior`` (default), ``prior`` (the network's mean alone).
    uncertainty : bool
        Blind-spot models: also return the posterior standard deviation.
    max_pass_voxels : int or None
        At most this many network voxels (windows with their margins) in one forward pass, bounding its
        time and memory; ``None``: as memory allows. An automatic tile is chosen to fit; a larger explicit
        ``tile`` is refused.
    """

    tile: int | None = None
    tta: bool = False
    device: str = "auto"
    precision: str = "auto"
    output: str = "posterior"
    uncertainty: bool = False
    max_pass_voxels: int | None = None

    def __post_init__(self) -> None:
        check(self.tile is None or self.tile >= 4, "tile must be >= 4 pixels or None")
        if self.tile is not None and self.tile < MIN_TILE:  # the command line refuses these (issue 10, item 15)
            msg = (f"tile={self.tile} is below {MIN_TILE}, the smallest tile the command line accepts: every tile "
                   "recomputes the model's margin around it, so small tiles run many times slower; use "
                   f"tile >= {MIN_TILE} or None (chosen from free memory)")  # fmt: skip
            warnings.warn(msg, UserWarning, stacklevel=3)
        check(self.max_pass_voxels is None or self.max_pass_voxels >= 1, "max_pass_voxels must be >= 1 or None")
        check(self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}")
        check(self.output in ("posterior", "prior"), "output must be 'posterior' or 'prior'")


def resolve_defaults(cfg: TrainConfig, ndim: int | None = None, device: str = "cpu") -> ResolvedConfig:
    """``cfg`` with each unset (None) per-algorithm field filled in; fields that hold a value are kept.

    Parameters
    ----------
    cfg : TrainConfig
        The configuration as the person gave it.
    ndim : int, optional
        2 or 3 spatial dimensions; from ``cfg.axes`` (3 when it holds Z) when omitted.
    device : str
        The device the run uses (``cpu``, ``cuda``, ``cuda:1``, ``mps``), for :data:`DEVICE_DEFAULTS`.
    """
    if isinstance(cfg, ResolvedConfig):
        return cfg
    nd = ndim if ndim is not None else (3 if "Z" in (cfg.axes or "") else 2)
    check(nd in (2, 3), f"only 2D and 3D training is supported, got {nd} spatial dimensions")
    values = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    values["algorithm"] = pick_algorithm(cfg.algorithm, nd)  # ``auto`` becomes the algorithm that runs
    table, base = device_defaults(values["algorithm"], nd, device), ALGORITHM_DEFAULTS[values["algorithm"]][nd]
    if values["learning_rate"] is None and values["batch_size"] is not None:  # scaled from the device-free row
        values["learning_rate"] = batch_scaled_lr(base["learning_rate"], base["batch_size"], values["batch_size"])
    return ResolvedConfig(**{**values, **{k: v for k, v in table.items() if values[k] is None}})


def to_dict(cfg: TrainConfig | PredictConfig) -> dict[str, Any]:
    """Plain JSON-able dict of a config."""
    d = dataclasses.asdict(cfg)
    if "percentiles" in d:
        d["percentiles"] = list(d["percentiles"])
    return d


# Keys that older model files hold and that no longer mean anything (``extra`` switched the blind-spot defaults).
_RETIRED = ("extra",)


def from_dict(d: dict[str, Any], cls: type = TrainConfig) -> Any:
    """Build a config from a dict, rejecting unknown keys with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    d = {k: v for k, v in d.items() if not (k in _RETIRED and k not in names)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} option(s): {', '.join(unknown)}")
    if "percentiles" in d:
        d["percentiles"] = tuple(d["percentiles"])
    check_types(cls, d)
    try:
        return cls(**d)
    except TypeError as exc:  # a value of a type the checks above do not cover
        raise ConfigError(f"invalid {cls.__name__} value ({exc})") from exc
