"""The weights' moving average (TrainConfig.ema_decay): what is validated and returned, training unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import napari_selfsup_denoise.engine._ema as ema
from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.config import ConfigError
from napari_selfsup_denoise.engine.train import train

TINY = dict(algorithm="blindspot", base_channels=8, depth=1, patch_size=32, start_from="random", val_fraction=0.25)


def _run(image: np.ndarray, decay: float, steps: int = 12) -> tuple[list[float], object]:
    cfg = TrainConfig(axes="YX", max_steps=steps, max_seconds=None, ema_decay=decay, **TINY)
    gen, losses = train(image, cfg), []
    while True:
        try:
            ev = next(gen)
        except StopIteration as stop:
            return losses, stop.value
        if ev.phase != "checking":
            losses.append(ev.loss)


def test_the_average_follows_the_ramp_then_the_decay_and_applied_restores_the_weights():
    net = nn.Linear(2, 1)
    avg = ema.WeightAverage(net, 0.9)
    start = [v.clone() for v in avg.average]
    with torch.no_grad():
        net.weight.add_(1.0)
    avg.update(net)  # step 1: decay min(0.9, 2 / 11)
    w = 1 - 2 / 11
    torch.testing.assert_close(avg.average[0], start[0] + w * 1.0)
    trained = net.weight.detach().clone()
    with avg.applied(net):
        torch.testing.assert_close(net.weight, avg.average[0])
    assert torch.equal(net.weight, trained)


def test_training_is_unchanged_and_the_returned_weights_are_an_averaged_candidate(monkeypatch, camera_128):
    image = np.tile(camera_128[1], (2, 2))
    plain_losses, plain = _run(image, 0.0)
    seen: list[dict[str, torch.Tensor]] = []
    applied = ema.WeightAverage.applied

    def recording(self, net):  # record each averaged candidate the validation sees
        cm = applied(self, net)

        class _Ctx:
            def __enter__(_s):
                cm.__enter__()
                seen.append({k: v.detach().clone() for k, v in net.state_dict().items()})

            def __exit__(_s, *exc):
                return cm.__exit__(*exc)

        return _Ctx()

    monkeypatch.setattr(ema.WeightAverage, "applied", recording)
    averaged_losses, averaged = _run(image, 0.5)
    assert averaged_losses == plain_losses, "the average must not change training"
    assert seen, "the validation never saw the average"
    got = averaged.net.state_dict()
    assert any(all(torch.equal(got[k], c[k]) for k in got) for c in seen), "returned weights are not a candidate"
    trained = plain.net.state_dict()
    assert not all(torch.equal(got[k], trained[k]) for k in got)


def test_a_decay_outside_zero_to_one_is_refused():
    with pytest.raises(ConfigError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)
