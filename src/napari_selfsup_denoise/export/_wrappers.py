"""The exported denoisers: noisy image in (normalised), denoised image out, borders mirrored inside.

This file is copied into every BioImage Model Zoo package after the networks
it wraps (see :mod:`._arch`), so it may import torch, numpy and the standard
library only: a package must load without napari-selfsup-denoise. Each module mirrors its input by the
network's margin and crops the result, so a whole-image pass equals
napari-selfsup-denoise's own prediction, and tiles with a halo of ``margin``
pixels meet without seams.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..engine.nets.blindspot import BlindSpotNet
from ..engine.nets.unet import UNet


def mirrored(net: nn.Module, x: torch.Tensor, margin: int) -> torch.Tensor:
    """``net`` applied to ``x`` mirrored by ``margin`` on every side of every spatial axis, cropped back."""
    y = net(F.pad(x, [margin] * (2 * (x.dim() - 2)), mode="reflect"))
    for d in range(2, x.dim()):
        y = y.narrow(d, margin, x.shape[d])
    return y


class UNetDenoiser(nn.Module):
    """The U-Net of the Noise2Void family and Noise2Noise; keyword arguments as :class:`UNet`'s."""

    def __init__(self, margin: int, **unet: object) -> None:
        super().__init__()
        self.margin = margin
        self.net = UNet(**unet)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoised batch ``(B, C, *spatial)``."""
        return mirrored(self.net, x, self.margin)


class BlindSpotDenoiser(nn.Module):
    """Blind-spot network + fitted noise model: returns the posterior mean (or the prior mean) per pixel and channel.

    Parameters
    ----------
    margin : int
        Mirrored context per side.
    ndim, channels, depth, base : int
        Shape of the :class:`BlindSpotNet`.
    poisson : bool
        Noise variance ``a * mu + b`` (clamped at ``min_var``) instead of the constant ``b``.
    logvar_min, logvar_max : float
        Range the network's prior log-variance is clamped to.
    min_var : float
        Smallest Poisson-Gaussian noise variance.
    prior_only : bool
        Return the network's prior mean instead of the posterior (the output the model's self-check chose).
    """

    noise_a: torch.Tensor
    noise_b: torch.Tensor

    def __init__(
        self,
        margin: int,
        ndim: int = 2,
        channels: int = 1,
        depth: int = 3,
        base: int = 24,
        poisson: bool = False,
        logvar_min: float = -12.0,
        logvar_max: float = 6.0,
        min_var: float = 1e-6,
        prior_only: bool = False,
    ) -> None:
        super().__init__()
        self.net = BlindSpotNet(ndim, channels, depth, base)
        self.margin, self.channels, self.poisson = margin, channels, poisson
        self.logvar_min, self.logvar_max, self.min_var = logvar_min, logvar_max, min_var
        self.prior_only = prior_only
        self.register_buffer("noise_a", torch.zeros(channels))
        self.register_buffer("noise_b", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior mean ``(y * var_x + mu * var_n) / (var_x + var_n)``, or ``mu``, of a batch ``(B, C, *spatial)``."""
        out = mirrored(self.net, x, self.margin).float()
        c = self.channels
        mu = out[:, :c]
        if self.prior_only:
            return mu
        var_x = torch.exp(out[:, c:].clamp(self.logvar_min, self.logvar_max))
        shape = [1, c] + [1] * (x.dim() - 2)
        a, b = self.noise_a.view(shape), self.noise_b.view(shape)
        var_n = torch.clamp(a * mu + b, min=self.min_var) if self.poisson else b.expand_as(mu)
        return (x.float() * var_x + mu * var_n) / (var_x + var_n)
