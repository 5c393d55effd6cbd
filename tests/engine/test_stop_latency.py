"""Stop is honoured within the step in progress: no preview is computed once Stop is pressed."""

from __future__ import annotations

import numpy as np

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine.train import train


class _PressedDuringStepOne:
    """A stop event that reads unset at the loop's first check and set from then on (Stop during step 1)."""

    def __init__(self) -> None:
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > 1


def test_stop_pressed_during_a_step_skips_the_preview_and_ends_training():
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    asked: list[int] = []

    def preview() -> np.ndarray:
        asked.append(1)
        return img

    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=50, max_seconds=None, patch_size=16, batch_size=2, depth=1,
                      base_channels=4, preview_every_s=1e-9)  # fmt: skip
    gen = train(img, cfg, stop=_PressedDuringStepOne(), preview=preview)  # type: ignore[arg-type]
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as end:
            model = end.value
            break
    assert [ev.step for ev in events] == [1]
    assert asked == [] and events[0].preview is None  # old code: a preview (up to 6 steps) before Stop was seen
    assert model.summary["ended_by"] == "stopped"
