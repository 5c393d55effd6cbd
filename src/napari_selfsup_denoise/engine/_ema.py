"""A moving average of the network's weights over training, validated and returned in their place.

Blind-spot training from the built-in prior swings by up to 2.8 dB between checkpoints 50 steps apart
(H200, nuclei_pg20, docs/benchmarks.md "GPU ... session 7"); the validation picks among those
checkpoints. With ``TrainConfig.ema_decay`` above 0 the checkpoints it compares are an exponential
moving average of the trained weights instead: training itself is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

RAMP = 10  # after step t the decay is at most (1 + t) / (RAMP + t): early on the average follows the weights


def _floats(net: nn.Module) -> list[torch.Tensor]:
    """The floating-point tensors of ``net``'s state (parameters and buffers, the noise model's too)."""
    return [v for v in net.state_dict().values() if v.is_floating_point()]


class WeightAverage:
    """An exponential moving average of a network's floating-point state, updated after each step.

    Parameters
    ----------
    net : nn.Module
        The network being trained; the average starts at its current weights.
    decay : float
        The largest decay, in (0, 1); after step ``t`` the decay is ``min(decay, (1 + t) / (RAMP + t))``.
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.decay, self.steps = decay, 0
        self.average = [v.detach().clone() for v in _floats(net)]

    def update(self, net: nn.Module) -> None:
        """Move the average towards ``net``'s weights after one optimiser step (no wait for the device)."""
        self.steps += 1
        weight = 1.0 - min(self.decay, (1 + self.steps) / (RAMP + self.steps))
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [v.detach() for v in _floats(net)], weight)

    @contextmanager
    def applied(self, net: nn.Module) -> Iterator[None]:
        """``net`` holds the average inside the block and its own trained weights again after it."""
        live = _floats(net)
        trained = [v.detach().clone() for v in live]
        with torch.no_grad():
            torch._foreach_copy_(live, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(live, trained)
