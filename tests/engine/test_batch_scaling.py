"""Training that scales with the batch (issue 9 item 2): the noise model's rate, and a plain note on short runs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import napari_selfsup_denoise.engine.train as train_module
from napari_selfsup_denoise import train
from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine import _step
from napari_selfsup_denoise.engine._schedule import FEW_STEPS, ShortRunWarning, few_steps_note, plan

# A small blind-spot network from random weights (its learned Gaussian noise model is the second parameter group).
TINY_BS = dict(algorithm="blindspot", base_channels=8, depth=1, patch_size=32, start_from="random", val_fraction=0.0)


def _rates(monkeypatch, image: np.ndarray, batch: int, steps: int = 4) -> np.ndarray:
    """Each step's learning rate per parameter group (network, noise model), seen by the optimiser."""
    seen: list[list[float]] = []

    def spy(method, net, opt, *args, **kwargs):
        seen.append([g["lr"] for g in opt.param_groups])
        return _step.optimiser_step(method, net, opt, *args, **kwargs)

    with monkeypatch.context() as m, warnings.catch_warnings():
        warnings.simplefilter("ignore", ShortRunWarning)
        m.setattr(train_module, "optimiser_step", spy)
        train(image, axes="YX", batch_size=batch, max_steps=steps, max_seconds=None, **TINY_BS)
    return np.array(seen)


def test_the_noise_models_rate_does_not_grow_with_the_batch(monkeypatch, camera_128):
    """Batch-scaled, the noise model (at 20x the network's rate) outran the network from random weights.

    On nuclei_pg20 at batch 16 (39 steps) its ``a`` went 0.87 -> 0.36 (truth 1) and the result fell to
    21.4 dB; at the batch-4 rate it ended at 0.61 and 29.1 dB. Before the fix its rate doubled at batch 16.
    """
    small, large = _rates(monkeypatch, camera_128[1], 4), _rates(monkeypatch, camera_128[1], 16)
    assert small.shape == large.shape == (4, 2)
    np.testing.assert_allclose(large[:, 0], 2 * small[:, 0], rtol=1e-12)  # the network: sqrt(16 / 4)
    np.testing.assert_allclose(large[:, 1], small[:, 1], rtol=1e-12)  # the noise model: as at batch 4
    np.testing.assert_allclose(small[:, 1], 20 * small[:, 0], rtol=1e-12)  # at batch 4 unchanged: 20x


def test_a_lower_typed_rate_still_lowers_the_noise_models_rate(monkeypatch, camera_128):
    low = _rates(monkeypatch, camera_128[1], 4, steps=2)
    with monkeypatch.context() as m:
        m.setitem(TINY_BS, "learning_rate", 1e-3)
        lower = _rates(monkeypatch, camera_128[1], 4, steps=2)
    np.testing.assert_allclose(lower, low / 4, rtol=1e-12)


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
