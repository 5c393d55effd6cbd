"""What the training loop and the predictor need from an algorithm."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from ...config import PredictConfig


class Method(Protocol):
    """What the training loop and the predictor need from an algorithm."""

    name: str

    def build(self, ndim: int, channels: int) -> nn.Module:
        """A fresh network for ``ndim`` spatial dimensions and ``channels`` channels."""

    def loss(
        self,
        net: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator | None,
    ) -> torch.Tensor:
        """Training loss of one batch (normalised data)."""

    def param_groups(self, net: nn.Module, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups."""

    def infer(self, net: nn.Module, x: torch.Tensor, pcfg: PredictConfig, margin: int = 0) -> dict[str, torch.Tensor]:
        """Outputs for a normalised batch: ``denoised`` and optionally ``uncertainty``, without ``margin`` per side."""

    def state(self, net: nn.Module, scale: tuple[float, ...]) -> dict[str, Any]:
        """JSON-able facts to report and save (e.g. fitted noise parameters)."""

    def bytes_per_pixel(self, net: nn.Module) -> int:
        """Rough peak inference memory per input pixel, for choosing tiles."""

    def prepare(self, net: nn.Module, canon: Any, norm: Any) -> None:
        """Look at the whole (canonical, lazily read) image once before training starts."""

    def after_step(self, net: nn.Module) -> None:
        """Called after every optimiser step (e.g. to keep parameters inside their bounds)."""
