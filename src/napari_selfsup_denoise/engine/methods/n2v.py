"""Noise2Void, N2V2, structN2V and Noise2Noise: a U-Net trained with a masked (or paired) MSE."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...config import PredictConfig, ResolvedConfig
from .._fast_conv import reuse_freed_memory
from ..masking import masked_mse, n2v_manipulate
from ..nets.core import crop_margin
from ..nets.unet import UNet


def struct_lines(struct_axis: str, span: int, ndim: int) -> list[tuple[int, int]]:
    """structN2V's mask lines ``(spatial axis index, span)``: one per letter of ``struct_axis`` (``"Y"``, ``"YX"``).

    A letter the image does not have (``Z`` in 2D) masks along X instead, as one axis always did.
    """
    axes = "ZYX"[-ndim:]
    picked = sorted({axes.index(a) if a in axes else ndim - 1 for a in struct_axis.upper()})
    return [(i, span) for i in picked]


class N2VMethod:
    """Noise2Void, N2V2, structN2V and Noise2Noise on a U-Net."""

    def __init__(self, cfg: ResolvedConfig) -> None:
        self.cfg = cfg
        self.name = cfg.algorithm

    def build(self, ndim: int, channels: int) -> nn.Module:
        """A U-Net; the N2V2 variant for ``n2v2``."""
        c = self.cfg
        return UNet(
            ndim,
            channels,
            channels,
            c.depth,
            c.base_channels,
            c.batch_norm,
            c.residual,
            n2v2=c.algorithm == "n2v2",
        )

    def loss(
        self,
        net: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator | None,
    ) -> torch.Tensor:
        """Masked MSE (N2V family) or plain MSE against the second acquisition (N2N)."""
        if self.name == "n2n":
            if target is None:
                raise ValueError("Noise2Noise needs a target image (a second noisy acquisition)")
            return torch.mean((net(x).float() - target.float()) ** 2)
        c = self.cfg
        struct = struct_lines(c.struct_axis, c.struct_span, x.ndim - 2) if self.name == "structn2v" else []
        mode = "median" if self.name == "n2v2" else "uniform"
        xm, mask = n2v_manipulate(x, c.masked_fraction, c.neighbourhood_radius, mode, struct, gen)
        return masked_mse(net(xm), x, mask)

    def param_groups(self, net: nn.Module, lr: float) -> list[dict[str, Any]]:
        """One group with every parameter."""
        return [{"params": list(net.parameters()), "lr": lr}]

    def infer(self, net: nn.Module, x: torch.Tensor, pcfg: PredictConfig, margin: int = 0) -> dict[str, torch.Tensor]:
        """The network's output is the denoised image (less ``margin``)."""
        with reuse_freed_memory():  # the window's feature maps reuse the last window's memory (no page faults)
            return {"denoised": crop_margin(net(x), margin)}

    def state(self, net: nn.Module, scale: tuple[float, ...]) -> dict[str, Any]:
        """Nothing beyond the weights."""
        return {}

    def bytes_per_pixel(self, net: nn.Module) -> int:
        """About six full-resolution feature maps live at the peak."""
        return 4 * 6 * self.cfg.base_channels

    def prepare(self, net: nn.Module, canon: Any, norm: Any) -> None:
        """Nothing to fit before training."""

    def after_step(self, net: nn.Module) -> None:
        """Nothing to do after an optimiser step."""
