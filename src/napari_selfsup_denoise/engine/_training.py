"""Pieces of the training loop: patch choice, learning-rate schedule, clipping, preview."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config import PredictConfig, ResolvedConfig
from ..defaults import ALGORITHM_DEFAULTS
from .data import DataError
from .events import drain

if TYPE_CHECKING:
    from .model import Model

Preview = Callable[[], Any]


def choose_patch(
    cfg: ResolvedConfig, spatial: tuple[int, ...], ndim: int, multiple: int, min_edge: int = 0
) -> tuple[int, int, int]:
    """Patch ``(Z, Y, X)``: the configured size clipped to the image, square in YX, on the pooling grid.

    ``min_edge`` raises every edge (Z included) to at least that size where the image allows: the
    blind-spot network needs patches larger than its receptive field (``BlindSpotNet.min_patch``).
    """
    z_size, y_size, x_size = spatial
    p = min(max(cfg.patch_size, min_edge), y_size, x_size)
    p -= p % multiple
    need = max(2 * multiple, 16)
    if p < need:
        raise DataError(
            f"the image's Y, X extent ({y_size} x {x_size}) is too small to train on: it needs at "
            f"least {need} x {need} pixels (for smaller images lower the "
            "network depth: --set depth=2 on the command line, depth=2 in Python)"
        )
    if ndim == 2:
        return 1, p, p
    pz = min(max(cfg.patch_size_z, min_edge), z_size)
    pz -= pz % multiple
    if pz < multiple:
        raise DataError(f"the stack has {z_size} Z planes; a 3D model of this depth needs >= {multiple}")
    return pz, p, p


# The warm-up lasts at least this many steps times the learning rate's gain over the table's (issue 9: a 5 %
# warm-up is ~8 steps of a minute-long CPU run; 1 seed in 3 then went bad on camera_g25 and nuclei_pg30).
WARMUP_MIN_STEPS = 50


def table_rate(cfg: ResolvedConfig) -> float:
    """The algorithm's default learning rate (:data:`~..defaults.ALGORITHM_DEFAULTS`) for ``cfg``'s 2D / 3D."""
    return float(ALGORITHM_DEFAULTS[cfg.algorithm][3 if "Z" in (cfg.axes or "") else 2]["learning_rate"])


WARMUP_MAX_SHARE = 0.25  # the warm-up never takes more than this share of the run


def peak_rate(cfg: ResolvedConfig, total_steps: float) -> float:
    """The run's peak learning rate: ``cfg.learning_rate``, lowered when the run is too short to warm up to it.

    A rate above the table's needs :data:`WARMUP_MIN_STEPS` warm-up steps per unit of gain; a run whose
    :data:`WARMUP_MAX_SHARE` cannot hold them peaks at the gain it can warm up to (at least the table's rate).
    Issue 9: from random weights, batch 16 for 39 steps at 8e-3 (a 10-step warm-up) sent the network's mean
    to -8 dB in 1 seed of 3.
    """
    table = table_rate(cfg)
    fits = max(1.0, WARMUP_MAX_SHARE * total_steps / WARMUP_MIN_STEPS)
    return cfg.learning_rate if cfg.learning_rate <= table * fits else table * fits


def group_rate(cfg: ResolvedConfig, lr: float, scale: float, peak: float | None = None) -> float:
    """The learning rate of a parameter group that learns at ``scale`` times the network's rate ``lr``.

    Such a group (the blind-spot noise model: two log-variances at 20x) follows the run's warm-up and
    decay but not a rate raised above the table's (a larger batch, or a typed rate): its gradient is an
    average over every pixel of the batch, as precise at the default batch as at a larger one, so a larger
    batch does not call for larger steps. Scaled with the batch, it outran the network from random weights
    (issue 9: batch 16, 39 steps, noise ``a`` 0.87 -> 0.36, 21.4 dB; at the table's rate 0.61 and 29.1 dB).
    A rate below the table's scales it down as before. ``peak`` is the run's peak rate (:func:`peak_rate`).
    """
    return lr * scale * min(1.0, table_rate(cfg) / (cfg.learning_rate if peak is None else peak))


def warmup_share(cfg: ResolvedConfig, total_steps: float, peak: float | None = None) -> float:
    """Share of the budget spent warming up the learning rate.

    ``cfg.warmup_fraction``, or, when longer, :data:`WARMUP_MIN_STEPS` times the
    learning rate's gain over the algorithm's default rate (a batch-scaled or a
    typed higher rate warms up for longer), capped at a quarter of the budget;
    for every algorithm (issue 9: N2V with a 5 % warm-up, 9 steps of 175, stalled on
    1 seed of 3; docs/benchmarks.md "N2V at 175 steps").
    ``total_steps`` is the (estimated) number of steps of the run, ``peak`` its peak rate (default the config's).
    """
    gain = (cfg.learning_rate if peak is None else peak) / table_rate(cfg)
    steps = WARMUP_MIN_STEPS * max(1.0, gain)
    return max(cfg.warmup_fraction, min(WARMUP_MAX_SHARE, steps / max(total_steps, 1.0)))


def lr_at(cfg: ResolvedConfig, frac: float, warmup: float | None = None, peak: float | None = None) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak, over budget fraction ``frac``.

    ``warmup`` is the share of the budget spent warming up (``cfg.warmup_fraction`` when None), ``peak``
    the peak rate (``cfg.learning_rate`` when None).
    """
    w = cfg.warmup_fraction if warmup is None else warmup
    top = cfg.learning_rate if peak is None else peak
    if frac < w:
        return top * max(frac / w, 0.02)
    f = min(1.0, (frac - w) / max(1e-9, 1 - w))
    return top * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))


def clock() -> float:
    """Seconds on the training clock (monotonic); a test replaces it to replay a run's timing."""
    return time.perf_counter()


@dataclass
class RunState:
    """Mutable bookkeeping of one run."""

    t0: float = field(default_factory=lambda: clock())
    step: int = 0
    rate: float = 0.0
    val_loss: float | None = None
    val_step: int = -1  # the step of the last validation
    best: float = math.inf
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    norms: dict[int, deque[float]] = field(default_factory=dict)
    norms_read: int = 0  # how often norms were added to the history (the clipping limits change then)
    limits: tuple[Any, torch.Tensor] | None = None  # the clipping limits on the device, and what they follow
    bad: int = 0
    last_preview: float = 0.0
    message: str = ""
    stopped: str = "budget"
    noise: dict[str, Any] | None = None
    noise_step: int = 0  # the step ``noise`` was read after (0: not yet)
    loss: float = math.nan  # the last loss read (see train.SYNC_EVERY)
    pending: list[torch.Tensor] = field(default_factory=list)  # per step not read yet: loss, then gradient norms
    val_s: float = 0.0  # seconds the last validation took
    average: Any = None  # the weights' moving average (_ema.WeightAverage) when TrainConfig.ema_decay > 0

    def elapsed(self) -> float:
        return clock() - self.t0


# A run whose held-out loss has not improved for this many steps ends early, keeping its best weights. On an H200
# a 30-s blind-spot run from the prior (2,871 steps) had its best validation at step 500; from step ~1,000 the
# held-out loss rose and the image got 4 dB worse (benchmarks/val_trace.py; docs/benchmarks.md "GPU ... session 7").
PATIENCE_STEPS = 1000


def ended_early(st: RunState, max_bad: int) -> tuple[str, str] | None:
    """Why the run ends before its budget (``ended_by``, message), or None.

    After ``max_bad`` non-finite losses in a row it has diverged; right after a validation that is
    :data:`PATIENCE_STEPS` or more steps past the best one, it has stopped improving.
    """
    if st.bad >= max_bad:
        return "diverged", "training diverged (non-finite loss); kept the best weights"
    if st.best_state is not None and st.val_step == st.step and st.step - st.best_step >= PATIENCE_STEPS:
        return "no improvement", (
            f"the held-out loss had not improved for {st.step - st.best_step} steps, so training ended at step "
            f"{st.step} and kept the weights of step {st.best_step}"
        )
    return None


def clip_gradients(groups: list[list[nn.Parameter]], st: RunState, record: bool = True) -> torch.Tensor:
    """Clip each parameter group's gradient at twice its median norm of the last 100 steps (guards blow-ups).

    Groups are clipped separately (e.g. the network and a noise model learning at another rate and scale),
    so one group's large gradients cannot shrink another's steps. Returns the groups' norms before clipping,
    one float32 tensor on the gradients' device (what ``clip_grad_norm_`` gives per group, from the same
    operations, in a dozen device operations for all groups); ``record=False`` leaves adding them to the
    history to :func:`record_norms` (reading them waits for the device).
    """
    grads = [[p.grad for p in params if p.grad is not None] for params in groups]
    flat = [g for gs in grads for g in gs]
    device = flat[0].device if flat else torch.device("cpu")
    if not flat:
        norms = torch.zeros(len(groups), device=device)
    else:
        each = torch.stack(torch._foreach_norm(flat))  # per-tensor norms; each group's norm is theirs
        ends = np.cumsum([0] + [len(gs) for gs in grads])
        parts = [torch.linalg.vector_norm(each[i:j]) for i, j in zip(ends, ends[1:])]  # an empty group: 0
        norms = parts[0].reshape(1) if len(parts) == 1 else torch.stack(parts)
        coef = torch.clamp((norms + 1e-6).reciprocal() * _limits(st, len(groups), device), max=1.0)
        for i, gs in enumerate(grads):
            if gs:
                torch._foreach_mul_(gs, coef[i])
    if record:
        record_norms(st, norms.tolist())
    return norms


def _limits(st: RunState, groups: int, device: torch.device) -> torch.Tensor:
    """Each group's clipping limit (2 x the median of its history, 1e6 before 20 steps) on ``device``.

    Sent to the device only when the history changed since the last call (it changes when norms are read).
    """
    key = (st.norms_read, groups, device)
    if st.limits is None or st.limits[0] != key:
        hists = [st.norms.setdefault(i, deque(maxlen=100)) for i in range(groups)]
        values = [2.0 * float(np.median(h)) if len(h) >= 20 else 1e6 for h in hists]
        st.limits = (key, torch.tensor(values, dtype=torch.float32).to(device, non_blocking=True))
    return st.limits[1]


def record_norms(st: RunState, norms: list[float]) -> None:
    """Add one step's finite gradient norms (one per group) to the clipping history."""
    for i, norm in enumerate(norms):
        if math.isfinite(norm):
            st.norms.setdefault(i, deque(maxlen=100)).append(norm)
    st.norms_read += 1


def preview_now(model: Model, preview: Preview | np.ndarray, device: torch.device) -> np.ndarray | None:
    """Denoise the caller's current preview image with the network as it is now.

    Only a central box that costs at most ``preview_cost.PREVIEW_STEPS`` training steps
    is denoised (the rest stays raw); None when even one pixel would cost more.
    """
    img = preview() if callable(preview) else preview
    if img is None:
        return None
    from . import predict as _predict
    from .preview_cost import preview_region

    img = np.asarray(img)
    axes = model.resolve_axes(img.shape, None)
    region = preview_region(img.shape, axes, model.margin, model.multiple, model.config)
    if region is None:
        return None
    out = img.astype(np.float32)  # a copy: outside the region the preview shows the input
    try:
        drain(_predict.predict(model, img, PredictConfig(device=str(device)), axes=axes, out=out, region=region))
    finally:
        model.net.train()
    return out
