"""The first step's event is not held back by a live preview (issue 10 item 10: 3D N2V's first step came 9.1 s
after Train; a preview of 5.3 training steps was computed inside it, because the timed probe before it had
outlasted ``preview_every_s``). A fake training clock moves only when an optimiser step runs: no wall-clock."""

from __future__ import annotations

import numpy as np

import napari_selfsup_denoise.engine.train as train_mod
from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine import _schedule, _step, _training


def test_previews_are_spaced_from_the_first_step_not_from_the_start_of_the_run(monkeypatch):
    now, steps = [1000.0], []

    def step(*args, **kwargs):  # the probe's throw-away steps take 2 s each, training steps 1 s each
        now[0] += 2.0 if len(steps) < _schedule.PROBE_STEPS else 1.0
        steps.append(1)
        return _step.optimiser_step(*args, **kwargs)

    monkeypatch.setattr(_training, "clock", lambda: now[0])
    monkeypatch.setattr(train_mod, "optimiser_step", step)
    monkeypatch.setattr(_schedule, "optimiser_step", step)
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=8, max_seconds=600.0, patch_size=16, batch_size=2,
                      depth=1, base_channels=4, seed=0, preview_every_s=3.0)  # fmt: skip
    gen = train_mod.train(img, cfg, preview=img)
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration:
            break
    assert len(steps) == _schedule.PROBE_STEPS + 8  # the probe ran (6 s), then the 8 steps
    shown = [ev.step for ev in events if ev.preview is not None]
    assert shown == [3, 6]  # old code: [1, 4, 7] (step 1 at 7 s since the start, >= 3 s since "no preview")
