"""The time-budget schedule: planned once in steps, so the clock's jitter does not move the learning rate.

A fake training clock moves only when an optimiser step runs (the probe's throw-away steps included), by
the seconds the test gives each step: runs are replayed deterministically, no wall-clock timing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import napari_selfsup_denoise.engine.train as train_module
from napari_selfsup_denoise import train
from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine import _schedule, _step, _training
from napari_selfsup_denoise.engine._schedule import Schedule, plan, round_steps
from napari_selfsup_denoise.engine._training import lr_at, warmup_share

TINY = dict(algorithm="n2v", patch_size=32, batch_size=4, base_channels=8, depth=2, seed=0)


class FakeClock:
    """The training clock; each optimiser step advances it by ``seconds(i)`` for the i-th step (0-based)."""

    def __init__(self, seconds: Callable[[int], float]) -> None:
        self.now, self.seconds, self.steps = 1000.0, seconds, 0

    def __call__(self) -> float:
        return self.now

    def step(self, *args, **kwargs):
        self.now += self.seconds(self.steps)
        self.steps += 1
        return _step.optimiser_step(*args, **kwargs)


def _timed(monkeypatch, image, seconds: Callable[[int], float], budget: float):
    clock = FakeClock(seconds)
    with monkeypatch.context() as m:
        m.setattr(_training, "clock", clock)
        m.setattr(train_module, "optimiser_step", clock.step)
        m.setattr(_schedule, "optimiser_step", clock.step)
        events = []
        model = train(image, axes="YX", max_steps=100_000, max_seconds=budget, on_progress=events.append, **TINY)
    return model, events


def _jittered(probes: list[float], seed: int) -> Callable[[int], float]:
    """The probe's steps take ``probes``; training steps 0.2 s +- 30 % (uniform, seeded)."""
    noise = np.random.default_rng(seed).uniform(-0.3, 0.3, 10_000)
    return lambda i: probes[i] if i < len(probes) else 0.2 * (1 + noise[i])


def test_a_timed_run_follows_the_step_schedule_whatever_the_clocks_jitter(monkeypatch, camera_128):
    # The same typical step time (the probe's steps in another order), different jitter while training:
    # on the old code the rate followed the clock (frac = elapsed / max_seconds), so these sequences differed.
    a, ev_a = _timed(monkeypatch, camera_128[1], _jittered([1.0, 0.17, 0.23], seed=1), budget=30.05)
    b, ev_b = _timed(monkeypatch, camera_128[1], _jittered([1.0, 0.23, 0.17], seed=2), budget=30.05)
    planned = a.summary["planned_steps"]
    assert planned == b.summary["planned_steps"] == 145  # 143 steps of 0.2 s fit after the probe's 1.4 s
    n = min(len(ev_a), len(ev_b))
    assert n >= planned - 5, "the deadline ends the run within a few steps of the plan"
    assert [e.lr for e in ev_a[:n]] == [e.lr for e in ev_b[:n]]
    # ... and it is the step-budget run of that length (the probe leaves the batches and masks untouched)
    steps: list = []
    train(camera_128[1], axes="YX", max_steps=planned, max_seconds=None, on_progress=steps.append, **TINY)
    assert [e.lr for e in steps[:n]] == [e.lr for e in ev_a[:n]]
    assert [e.loss for e in steps[:n]] == [e.loss for e in ev_a[:n]], "a timed run replays as a step-budget run"
    assert ev_a[-1].lr < 0.1 * a.config.learning_rate, "the rate has decayed by the deadline"


def test_a_run_that_slows_down_twofold_midway_still_ends_at_the_final_rate(monkeypatch, camera_128):
    clock_at = {"t": 0.0}

    def seconds(i: int) -> float:
        dt = 1.0 if i == 0 else (0.1 if clock_at["t"] < 10.0 else 0.2)
        clock_at["t"] += dt
        return dt

    model, events = _timed(monkeypatch, camera_128[1], seconds, budget=25.0)
    peak = model.config.learning_rate
    assert model.summary["replans"] >= 1
    assert abs(model.summary["planned_steps"] - model.summary["steps"]) <= 1 and model.summary["steps"] < 180
    assert events[-1].lr < 0.1 * peak, f"ended at {events[-1].lr / peak:.2f} of the peak rate"
    assert events[-1].elapsed <= 25.0 + 0.2
    assert events[-1].total == events[-1].step and events[-1].eta == pytest.approx(0.0)
    lrs = [e.lr for e in events]
    assert max(lrs) == pytest.approx(peak, rel=0.05), "the warm-up still reached the peak"


def test_a_step_budget_spans_max_steps_and_a_time_budget_the_steps_it_allows():
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX", max_steps=300, max_seconds=None), ndim=2)
    sched = plan(cfg, None, 0.0)
    assert (sched.total, sched.timed) == (300, False)
    assert [sched.lr(s) for s in (0, 150, 299)] == [lr_at(cfg, s / 300, warmup_share(cfg, 300)) for s in (0, 150, 299)]
    timed = resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX", max_steps=10_000, max_seconds=60), ndim=2)
    assert plan(timed, 0.32, 1.5).total == 180  # 182 steps fit after 1.5 s; a 5-step grid at this length
    assert plan(timed, 0.32, 1.5, overhead_s=1.0 / 50).total == 170  # 1 s of validation every 50 steps
    assert plan(timed.replace(max_steps=100), 0.32, 1.5).total == 100  # the step budget still binds
    assert [round_steps(n) for n in (1, 19, 45, 186, 194, 1234)] == [1, 19, 46, 185, 195, 1250]


def test_the_plan_holds_through_jitter_and_follows_a_lasting_change_of_pace():
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX", max_steps=10_000, max_seconds=60), ndim=2)
    sched = Schedule(cfg, 185, timed=True, since=(0, 1.5))
    sched.follow(20, 1.5 + 20 * 0.34)  # 6 % slower than planned: within the band, no re-plan
    assert (sched.total, sched.replans, sched.drifting) == (185, 0, False)
    sched.follow(100, 1.5 + 100 * 0.32 + 10.0)  # a 10-s stall: a sign of drift, not yet a new plan
    assert (sched.total, sched.replans, sched.drifting) == (185, 0, True)
    sched.follow(110, 43.5 + 10 * 0.32)  # back at 0.32 s a step: the 10 s cost 31 steps, the rest fits 41
    assert (sched.total, sched.replans) == (110 + int((60 - 46.7) / 0.32), 1)


def test_a_slow_start_does_not_skip_the_warm_up(monkeypatch, camera_128):
    # The old rule put the first Adam step at (seconds before it / max_seconds) / 5 % of the peak: a 1-s
    # validation of the start weights in a 10-s budget made it the full peak rate (replayed on camera_g25 seed 2:
    # -0.35 dB). Now the first step is at the warm-up's first rate, whatever the start cost.
    start = train(camera_128[1], axes="YX", max_steps=2, max_seconds=None, **TINY)
    clock = FakeClock(lambda i: 0.2)
    real_validate = train_module.validate

    def slow_validate(*args, **kwargs):
        clock.now += 1.0
        return real_validate(*args, **kwargs)

    events: list = []
    with monkeypatch.context() as m:
        m.setattr(_training, "clock", clock)
        m.setattr(train_module, "optimiser_step", clock.step)
        m.setattr(_schedule, "optimiser_step", clock.step)
        m.setattr(train_module, "validate", slow_validate)
        train(camera_128[1], axes="YX", init=start, max_steps=100_000, max_seconds=10.0, on_progress=events.append,
              val_fraction=0.3, **TINY)  # fmt: skip
    peak = start.config.learning_rate
    assert events[0].lr == pytest.approx(0.02 * peak), f"first step at {events[0].lr / peak:.2f} of the peak"
