"""Weights a training run starts from: a shipped prior or another model's network, and where they came from.

The engine reads no files: a caller (the API, the CLI, the widget) finds the
weights (:mod:`napari_selfsup_denoise.prior`) and passes them to
:func:`.train.train` as :class:`InitialWeights`. The noise model is never taken
over: it belongs to the image and is fitted to it before the first step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

NOISE_PREFIX = "noise."  # the blind-spot network's noise model: per image, never part of a start


def network_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the noise model's entries (and without anything that is not a tensor of the network)."""
    return {k: v for k, v in state.items() if not k.startswith(NOISE_PREFIX) and not k.startswith("_")}


@dataclass(frozen=True)
class InitialWeights:
    """Network weights to start training (or zero-shot denoising) from.

    Attributes
    ----------
    state : dict of str to torch.Tensor, or None
        The network's weights (state-dict keys), without the noise model; None keeps the
        random weights a new network starts with (``source`` then says why).
    source : dict
        Where they came from, JSON-able; saved in the trained model's summary as ``start``
        (e.g. ``{"kind": "builtin", "name": ..., "commit": ...}`` or ``{"kind": "file", "path": ...}``).
    """

    state: dict[str, torch.Tensor] | None
    source: dict[str, Any] = field(default_factory=dict)

    def mismatch(self, net: nn.Module) -> str:
        """Why these weights do not fit ``net`` (names or shapes), or ``""`` when they do."""
        if self.state is None:
            return ""
        own = network_state(net.state_dict())
        missing = sorted(set(own) - set(self.state))
        extra = sorted(set(self.state) - set(own))
        if missing or extra:
            return f"{len(missing)} weight(s) missing (e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})"
        wrong = [k for k, v in own.items() if tuple(v.shape) != tuple(self.state[k].shape)]
        if wrong:
            k = wrong[0]
            return (f"{len(wrong)} weight(s) of another shape (e.g. {k}: {tuple(self.state[k].shape)}, "
                    f"the network has {tuple(own[k].shape)})")  # fmt: skip
        return ""

    def load_into(self, net: nn.Module) -> None:
        """Copy the weights into ``net`` (its noise model is left as it is).

        Raises
        ------
        ValueError
            If the weights do not fit the network (another depth, width or channel count).
        """
        why = self.mismatch(net)
        if self.state is None:
            return
        if why:
            raise ValueError(f"the starting weights do not fit this network: {why}")
        with torch.no_grad():
            own = net.state_dict()
            for k, v in self.state.items():
                own[k].copy_(v)


def start_record(start: InitialWeights | None, continued: bool) -> dict[str, Any]:
    """What a trained model's summary says about its start (``start`` is ignored when ``continued``)."""
    if continued:
        return {"kind": "model", "detail": "continued from the model given (its weights and noise model)"}
    if start is None:
        return {"kind": "random", "detail": "random weights (no start given)"}
    return dict(start.source)
