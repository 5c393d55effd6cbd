"""A run whose held-out loss stops improving ends early and keeps its best weights (engine._training.ended_early)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import napari_selfsup_denoise.engine._training as training
import napari_selfsup_denoise.engine.train as train_mod
from napari_selfsup_denoise import TrainConfig

TINY = dict(algorithm="blindspot", base_channels=8, depth=1, patch_size=32, start_from="random", val_fraction=0.25)


def _run(monkeypatch, image, losses, steps=400):
    values = iter(losses)
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: next(values))
    monkeypatch.setattr(training, "PATIENCE_STEPS", 100)
    cfg = TrainConfig(axes="YX", max_steps=steps, max_seconds=None, **TINY)
    gen = train_mod.train(image, cfg)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def test_a_run_that_stops_improving_ends_early_with_its_best_weights(monkeypatch, camera_128):
    image = np.tile(camera_128[1], (2, 2))
    model = _run(monkeypatch, image, itertools.count(1.0))  # every validation worse than the first (step 50)
    s = model.summary
    assert (s["steps"], s["ended_by"], s["best_step"]) == (150, "no improvement", 50)
    assert "had not improved for 100 steps" in s["message"] and "weights of step 50" in s["message"]


def test_a_run_that_keeps_improving_uses_its_whole_budget(monkeypatch, camera_128):
    image = np.tile(camera_128[1], (2, 2))
    model = _run(monkeypatch, image, (1.0 / k for k in itertools.count(1)), steps=200)
    assert (model.summary["steps"], model.summary["ended_by"]) == (200, "budget")


@pytest.mark.parametrize("bad, expected", [(5, "diverged"), (0, None)])
def test_divergence_is_still_said_first(bad, expected):
    st = training.RunState(bad=bad)
    got = training.ended_early(st, 5)
    assert (got[0] if got else None) == expected
