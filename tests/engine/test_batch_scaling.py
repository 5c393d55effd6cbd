"""Training that scales with the batch (issue 9 item 2): the noise model's rate, and a plain note on short runs."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import napari_selfsup_denoise.engine.train as train_module
from napari_selfsup_denoise import defaults, train
from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine import _step
from napari_selfsup_denoise.engine._schedule import (
    FEW_STEPS,
    Schedule,
    ShortRunWarning,
    few_steps_note,
    lowered_rate_note,
    plan,
)
from napari_selfsup_denoise.engine._training import WARMUP_MIN_STEPS

# A small blind-spot network from random weights (its learned Gaussian noise model is the second parameter group).
TINY_BS = dict(algorithm="blindspot", base_channels=8, depth=1, patch_size=32, start_from="random", val_fraction=0.0)


def _rates(monkeypatch, image: np.ndarray, batch: int, steps: int = 4, **extra) -> np.ndarray:
    """The learning rate per parameter group (network, noise model) of a 400-step run's first ``steps`` steps."""
    seen: list[list[float]] = []
    stop = threading.Event()

    def spy(method, net, opt, *args, **kwargs):
        seen.append([g["lr"] for g in opt.param_groups])
        out = _step.optimiser_step(method, net, opt, *args, **kwargs)
        if len(seen) == steps:
            stop.set()  # after the update: the run ends before the next step
        return out

    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortRunWarning)
        m.setattr(train_module, "optimiser_step", spy)
        train(image, axes="YX", batch_size=batch, max_steps=400, max_seconds=None, stop=stop, **{**TINY_BS, **extra})
    return np.array(seen)


def test_the_noise_models_rate_does_not_grow_with_the_batch(monkeypatch, camera_128):
    """Batch-scaled, the noise model (at 20x the network's rate) outran the network from random weights.

    On nuclei_pg20 at batch 16 (39 steps) its ``a`` went 0.87 -> 0.36 (truth 1) and the result fell to
    21.4 dB; at the batch-4 rate it ended at 0.61 and 29.1 dB. Before the fix it learned at 20x the
    network's rate at any batch, i.e. at twice the batch-4 rate at batch 16.
    """
    small, large = _rates(monkeypatch, camera_128[1], 4), _rates(monkeypatch, camera_128[1], 16)
    assert small.shape == large.shape == (4, 2)
    np.testing.assert_allclose(small[:, 1], 20 * small[:, 0], rtol=1e-12)  # batch 4 as before: 20x the network
    # batch 16: the network peaks at 2x the rate (sqrt rule), the noise model at batch 4's peak (old: 20x again)
    np.testing.assert_allclose(large[:, 1], 10 * large[:, 0], rtol=1e-12)


def test_a_lower_typed_rate_still_lowers_the_noise_models_rate(monkeypatch, camera_128):
    low = _rates(monkeypatch, camera_128[1], 4, steps=2)
    lower = _rates(monkeypatch, camera_128[1], 4, steps=2, learning_rate=1e-3)
    np.testing.assert_allclose(lower, low / 4, rtol=1e-12)


@pytest.mark.parametrize(
    ("batch", "steps", "peak"),
    [(16, 39, 4e-3), (16, 400, 8e-3), (64, 9, 4e-3), (64, 400, 8e-3), (64, 800, 1.6e-2), (4, 9, 4e-3), (2, 9, 4e-3)],
)
def test_a_run_too_short_to_warm_up_to_a_raised_rate_peaks_lower(batch, steps, peak):
    """A raised rate needs 50 warm-up steps per unit of gain within a quarter of the run, else it peaks lower.

    From random weights on nuclei_pg20, batch 16 for 39 steps at 8e-3 (a 10-step warm-up) sent the
    network's mean to -8 dB in 1 seed of 3.
    """
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", batch_size=batch, max_steps=steps), ndim=2)
    sched = Schedule(cfg, steps)
    assert sched.peak == pytest.approx(peak)
    rates = [sched.lr(i) for i in range(steps)]
    assert max(rates) <= peak * (1 + 1e-12)
    warm = sum(r < max(rates) * (1 - 1e-9) for r in rates[: rates.index(max(rates)) + 1])
    assert warm >= min(WARMUP_MIN_STEPS * peak / 4e-3, 0.25 * steps) - 1


def test_a_large_batch_with_few_steps_is_told_plainly(camera_128):
    with pytest.warns(ShortRunWarning, match="batch 16 leaves only 3 optimiser steps"):
        model = train(camera_128[1], axes="YX", batch_size=16, max_steps=3, max_seconds=None, **TINY_BS)
    assert model.config.batch_size == 16, "the person's batch is kept"
    assert "batch 16 leaves only 3 optimiser steps" in model.summary["message"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortRunWarning)  # the default batch: no note, however short the run
        quiet = train(camera_128[1], axes="YX", max_steps=3, max_seconds=None, **TINY_BS)
    assert "optimiser steps" not in quiet.summary["message"]


def test_the_note_gives_the_pace_of_a_timed_plan_and_is_silent_with_enough_steps():
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", batch_size=64, max_seconds=60.0), ndim=2)
    note = few_steps_note(plan(cfg, 6.3, 1.0), 2)
    assert "batch 64 leaves only 9 optimiser steps" in note and "6.3 s a step" in note and "default is 4" in note
    assert few_steps_note(plan(cfg, 60.0 / (2 * FEW_STEPS), 0.0), 2) == ""
    default = resolve_defaults(TrainConfig(algorithm="blindspot", max_seconds=60.0), ndim=2)
    assert few_steps_note(plan(default, 6.3, 1.0), 2) == ""


def test_a_typed_rate_the_run_lowers_is_said_plainly(camera_128):
    """The peak rule lowered a typed rate silently (session 6); the person must learn what was used and why."""
    with pytest.warns(ShortRunWarning, match="the learning rate you set, 0.016, was lowered to 0.004"):
        model = train(camera_128[1], axes="YX", max_steps=3, max_seconds=None, learning_rate=1.6e-2, **TINY_BS)
    msg = model.summary["message"]
    assert "you set, 0.016, was lowered to 0.004 for this run of 3 steps" in msg
    assert "warm-up" in msg and "800 steps or more" in msg
    assert model.config.learning_rate == 1.6e-2, "the typed rate is kept in the config; the run peaks lower"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShortRunWarning)  # a typed rate at or below the default is used as typed
        quiet = train(camera_128[1], axes="YX", max_steps=3, max_seconds=None, learning_rate=1e-3, **TINY_BS)
    assert "learning rate" not in quiet.summary["message"]


def test_the_lowered_rate_note_only_for_a_typed_rate_the_run_cannot_reach():
    scaled = resolve_defaults(TrainConfig(algorithm="blindspot", batch_size=16, max_steps=39), ndim=2)
    assert Schedule(scaled, 39).peak < scaled.learning_rate
    assert lowered_rate_note(Schedule(scaled, 39), None) == "", "a batch-scaled rate is not the person's"
    typed = resolve_defaults(TrainConfig(algorithm="blindspot", learning_rate=8e-3), ndim=2)
    assert "lowered to 0.004 for this run of 39 steps" in lowered_rate_note(Schedule(typed, 39), 8e-3)
    assert "400 steps or more" in lowered_rate_note(Schedule(typed, 39), 8e-3)
    assert lowered_rate_note(Schedule(typed, 400), 8e-3) == ""
    assert lowered_rate_note(Schedule(typed, 200), 8e-3) != ""


def test_the_note_compares_with_the_batch_the_device_defaults_to(monkeypatch):
    """With a device row of batch 16 (defaults.DEVICE_DEFAULTS), a short run at 16 is not warned on that device."""
    monkeypatch.setitem(defaults.DEVICE_DEFAULTS, "cuda", {"blindspot": {2: {"batch_size": 16}}})
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", max_seconds=1.0), ndim=2, device="cuda")
    assert cfg.batch_size == 16
    assert few_steps_note(plan(cfg, 0.05, 0.0), 2, "cuda") == ""
    note = few_steps_note(plan(cfg, 0.05, 0.0), 2, "cpu")  # the same batch and pace, judged on a CPU
    assert "batch 16 leaves only" in note and "default is 4" in note
