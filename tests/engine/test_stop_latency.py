"""Stop is honoured within the step in progress: no preview is computed once Stop is pressed."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine import train as train_mod


def test_stop_pressed_during_a_step_skips_the_preview_and_ends_training(monkeypatch):
    """Stop pressed after step 1's optimiser update (none of its modules left to end it inside)."""
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    stop = threading.Event()
    asked: list[int] = []
    real = train_mod.optimiser_step

    def pressed_during(*args, **kwargs):
        out = real(*args, **kwargs)
        stop.set()
        return out

    def preview() -> np.ndarray:
        asked.append(1)
        return img

    monkeypatch.setattr(train_mod, "optimiser_step", pressed_during)
    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=50, max_seconds=None, patch_size=16, batch_size=2, depth=1,
                      base_channels=4, preview_every_s=1e-9)  # fmt: skip
    gen = train_mod.train(img, cfg, stop=stop, preview=preview)
    events = []
    with pytest.raises(StopIteration) as end:
        while True:
            events.append(next(gen))
    model = end.value.value
    assert [(ev.step, ev.phase) for ev in events] == [(1, "training"), (1, "checking")]
    assert asked == [] and events[0].preview is None  # old code: a preview (up to 6 steps) before Stop was seen
    assert model.summary["ended_by"] == "stopped"
