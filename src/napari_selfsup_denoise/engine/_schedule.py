"""A run's length in steps and its learning-rate schedule; under a time budget, planned once from timed steps.

A step budget spans ``max_steps``. Under a time budget the run first times a few throw-away steps on a
copy of the network (no effect on the run's weights, batches or masks), then fixes its length in steps
(:func:`schedule_for`, :func:`plan`) and follows the same step-based schedule as a step-budget run of
that length: the same seed gives the same learning rates whatever the clock's jitter, and a timed run can
be replayed with ``max_steps=summary["planned_steps"], max_seconds=None``. It re-plans only when the pace
would end the run more than :data:`DRIFT` away from the plan (a machine that slows down still ends with a
decayed rate); the run always ends at ``max_seconds``.
"""

from __future__ import annotations

import copy
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import ResolvedConfig
from ..defaults import device_defaults
from ._step import make_optimiser, optimiser_step, train_batch
from ._training import WARMUP_MAX_SHARE, WARMUP_MIN_STEPS, RunState, lr_at, peak_rate, table_rate, warmup_share
from .data import PatchSampler

if TYPE_CHECKING:
    from .model import Model

PROBE_STEPS = 3  # timed throw-away steps; the first (caches, allocations) is not counted unless it is the only one
PROBE_SHARE = 0.05  # ... ended early once they have used this share of the budget
DRIFT = 0.1  # re-plan when the steps the budget still allows differ from the plan by more than this share
DRIFT_MIN_STEPS = 10  # ... measured over at least this many steps since the last plan
# A batch above the default that leaves fewer steps than this is said plainly (issue 9 item 2: from random weights
# on nuclei_pg20, 39 steps gave 28.3 dB at batch 4 and 29.1 at batch 16 where 180 steps at batch 4 gave 31.4).
FEW_STEPS = 100


class ShortRunWarning(UserWarning):
    """The run is too short for what was asked: too few optimiser steps for the batch, or for a typed learning rate."""


@dataclass
class Schedule:
    """The planned length of a run in steps and the learning rate at each step.

    Attributes
    ----------
    cfg : ResolvedConfig
        The run's configuration (rate, warm-up, budgets).
    total : int
        Steps the schedule spans (warm-up, then cosine decay to 5 % of the peak at ``total``).
    timed : bool
        Whether a time budget set ``total`` (and may re-plan it).
    since : tuple of (int, float)
        Step and elapsed seconds the pace is measured from.
    replans : int
        How often the pace drifted enough to re-plan.
    step_s : float or None
        The timed seconds per step the plan used (None: a step budget).
    drifting : bool
        Whether the last check saw the pace drift (the next one, on a fresh window, decides).
    """

    cfg: ResolvedConfig
    total: int
    timed: bool = False
    since: tuple[int, float] = (0, 0.0)
    replans: int = 0
    drifting: bool = False
    step_s: float | None = None

    @property
    def peak(self) -> float:
        """The peak learning rate of a run of ``total`` steps (:func:`._training.peak_rate`)."""
        return peak_rate(self.cfg, self.total)

    def lr(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based)."""
        peak = self.peak
        return lr_at(self.cfg, step / self.total, warmup_share(self.cfg, self.total, peak), peak)

    def follow(self, step: int, elapsed: float) -> None:
        """Re-plan when the pace would end the run more than :data:`DRIFT` off the plan, twice in a row.

        The pace is measured since the last plan (or the last sign of drift), over at least
        :data:`DRIFT_MIN_STEPS` steps: jitter averages out, a lasting change of pace is confirmed on a
        fresh window before the plan changes, and a short stall costs only the steps it took.
        """
        s0, t0 = self.since
        if not self.timed or self.cfg.max_seconds is None or step - s0 < DRIFT_MIN_STEPS or elapsed <= t0:
            return
        pace = (step - s0) / (elapsed - t0)
        reach = min(self.cfg.max_steps, step + int(pace * max(0.0, self.cfg.max_seconds - elapsed)))
        if abs(reach - self.total) <= DRIFT * self.total:
            return
        if self.drifting:
            self.total, self.replans = max(step + 1, reach), self.replans + 1
        self.since, self.drifting = (step, elapsed), not self.drifting


def round_steps(n: int) -> int:
    """``n`` to the nearest multiple of a grid of 2.5-5 % of it (1, 2 or 5 times a power of ten; at least 1)."""
    if n < 20:
        return max(1, n)
    target = n / 20
    base = 10 ** math.floor(math.log10(target))
    grid = next(g * base for g in (5, 2, 1) if g * base <= target)
    return max(grid, int(n / grid + 0.5) * grid)


def plan(cfg: ResolvedConfig, step_s: float | None, elapsed: float, overhead_s: float = 0.0) -> Schedule:
    """The run's schedule: ``max_steps``, or under a time budget the steps the rest of it allows.

    ``step_s`` is the timed seconds per step (None: not timed), ``elapsed`` the seconds already used and
    ``overhead_s`` the other work per step (e.g. validation). The count is rounded to a 2.5-5 % grid so that
    runs on the same machine plan the same length; the deadline still ends the run.
    """
    if cfg.max_seconds is None or step_s is None:
        return Schedule(cfg, cfg.max_steps)
    fits = int(max(0.0, cfg.max_seconds - elapsed) / max(step_s + overhead_s, 1e-9))
    return Schedule(cfg, min(cfg.max_steps, round_steps(fits)), timed=True, since=(0, elapsed), step_s=step_s)


def few_steps_note(sched: Schedule, ndim: int, device: str = "cpu") -> str:
    """A plain warning when a batch above the default on ``device`` leaves fewer than :data:`FEW_STEPS` steps.

    Empty otherwise. The batch is the person's choice and is kept; the note says what it costs and what
    to try. On a CPU a larger batch processes no more patches per second, so it makes proportionally
    fewer steps in the same time (docs/benchmarks.md, "Batch scaling").
    """
    cfg = sched.cfg
    default = int(device_defaults(cfg.algorithm, ndim, device)["batch_size"])
    if cfg.batch_size <= default or sched.total >= FEW_STEPS:
        return ""
    pace = f" ({sched.step_s:.2g} s a step on this device)" if sched.step_s else ""
    return (
        f"batch {cfg.batch_size} leaves only {sched.total} optimiser steps in this budget{pace}; fewer than "
        f"{FEW_STEPS} train the network little (from random weights the result stays far below a longer run's). "
        f"A smaller batch (the default is {default}) makes more steps in the same time on a device whose "
        "throughput does not grow with the batch, such as a CPU; or give a longer budget"
    )


def run_notes(sched: Schedule, ndim: int, device: str, typed: float | None) -> list[str]:
    """The plain notes said before a run (a ``ShortRunWarning`` each) and kept in its summary's message.

    Too few steps for a batch above ``device``'s default (:func:`few_steps_note`), and a typed learning
    rate lowered for a short run (:func:`lowered_rate_note`); an empty list when neither applies.
    """
    return [n for n in (few_steps_note(sched, ndim, device), lowered_rate_note(sched, typed)) if n]


def lowered_rate_note(sched: Schedule, typed: float | None) -> str:
    """A plain note when the run peaks below the learning rate the person typed (``typed``; None: not typed).

    Empty otherwise. A rate above the algorithm's default needs a warm-up of
    :data:`~._training.WARMUP_MIN_STEPS` steps per multiple of the default, within
    :data:`~._training.WARMUP_MAX_SHARE` of the run (:func:`~._training.peak_rate`); a shorter run
    peaks lower, and the note says what was typed, what was used, why, and how long a run uses it.
    """
    used = sched.peak
    if typed is None or used >= typed:
        return ""
    table = table_rate(sched.cfg)
    need = math.ceil(WARMUP_MIN_STEPS * typed / table / WARMUP_MAX_SHARE)
    return (
        f"the learning rate you set, {typed:.3g}, was lowered to {used:.3g} for this run of {sched.total} steps: "
        f"a rate above the default ({table:.3g}) needs {WARMUP_MIN_STEPS} warm-up steps per multiple of it, within "
        f"a quarter of the run, and a faster warm-up let the network diverge (issue 9). {typed:.3g} is used in "
        f"runs of {need} steps or more: give a longer budget, or set a rate of at most {used:.3g}"
    )


def schedule_for(
    model: Model,
    sampler: PatchSampler,
    dtype: torch.dtype,
    st: RunState,
    stop: threading.Event | None,
    gen_device: torch.device,
    val_every: int,
) -> Schedule:
    """The run's schedule: ``max_steps``, or under a time budget the steps left after a few timed ones.

    The timed steps run on a copy of the network and optimiser, and the sampler's random state is
    restored after them, so the run itself draws the same batches as without them.

    Parameters
    ----------
    model, sampler, dtype, st
        The run's model, patch sampler, compute precision and bookkeeping (its clock; ``st.val_s``, the
        seconds of the start's validation when it had one, counts once every ``val_every`` steps).
    stop : threading.Event, optional
        Ends the timed steps early (the run then stops too).
    gen_device : torch.device
        Where the run draws its masks (the timed steps draw their own there).
    val_every : int
        Steps between validations.
    """
    cfg, method = model.config, model.method
    if cfg.max_seconds is None:
        return plan(cfg, None, 0.0)
    net = copy.deepcopy(model.net)
    device = next(net.parameters()).device
    opt = make_optimiser(method, net, cfg.learning_rate, device)
    gen, scratch, state = torch.Generator(gen_device).manual_seed(0), RunState(), sampler.rng.bit_generator.state
    limit = PROBE_SHARE * cfg.max_seconds
    times: list[float] = []
    try:
        for _ in range(PROBE_STEPS):
            if (stop is not None and stop.is_set()) or (times and st.elapsed() > limit):
                break
            t = st.elapsed()
            batch = train_batch(sampler, cfg.batch_size, model.ndim == 2, device)
            float(optimiser_step(method, net, opt, batch, gen, dtype, scratch))  # waits for the device
            times.append(st.elapsed() - t)
    finally:
        sampler.rng.bit_generator.state = state
    step_s = float(np.median(times[1:] or times)) if times else None  # None: stopped before a step
    overhead = st.val_s / val_every if sampler.has_validation else 0.0
    return plan(cfg, step_s, st.elapsed(), overhead)
