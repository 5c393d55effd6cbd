"""Blind-spot denoising with a learned noise model and posterior-mean inference (Laine et al. 2019).

The network predicts a Gaussian prior ``N(mu, var_x)`` for every pixel from its
surroundings only; training maximises the likelihood of the noisy value under
``N(mu, var_x + var_n)`` where ``var_n`` comes from the noise model
(:mod:`..noise`). Denoising takes the posterior mean, which puts back what the
pixel's own value says about the signal.

Its defaults (batch, width, depth and patch) are in ``config.ALGORITHM_DEFAULTS``. The
training loop raises any patch below the network's ``min_patch`` (the patch must be clearly
larger than the receptive field: :attr:`~..nets.blindspot.BlindSpotNet.min_patch`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...config import PredictConfig, ResolvedConfig
from .._fast_conv import reuse_freed_memory
from ..data import Normalisation, stats_subset
from ..nets.blindspot import BlindSpotNet
from ..nets.core import core_forward, crop_margin
from ..noise import NoiseModel, estimate_noise, gaussian_nll, posterior

NOISE_LR_SCALE = 20.0
AUTO_SPREAD = 0.3  # "auto" picks Poisson-Gaussian when the noise variance grows by more than this over the image
LOGVAR_RANGE = (-12.0, 6.0)
_PLANES = 12
_PLANE_EDGE = 256


def _noise_kind(spec: str) -> str:
    return "known" if spec.startswith("known:") else spec


def sample_planes(canon: Any, norm: Normalisation, rng: np.random.Generator) -> list[np.ndarray]:
    """Up to a dozen normalised 2D crops ``(C, Y, X)`` from random samples and Z planes."""
    s_n, t_n, _, z_n, y_n, x_n = canon.shape
    ey, ex = min(_PLANE_EDGE, y_n), min(_PLANE_EDGE, x_n)
    planes = []
    for _ in range(_PLANES if (s_n * t_n * z_n > 1 or y_n > ey or x_n > ex) else 1):
        s, t, z = (int(rng.integers(n)) for n in (s_n, t_n, z_n))
        y, x = int(rng.integers(y_n - ey + 1)), int(rng.integers(x_n - ex + 1))
        block = np.asarray(canon[s, t, :, z, y : y + ey, x : x + ex], dtype=np.float32)
        planes.append(norm.forward(block, channel_axis=0))
    return planes


class BlindSpotMethod:
    """Blind-spot network + noise model; see the module docstring."""

    name = "blindspot"

    def __init__(self, cfg: ResolvedConfig) -> None:
        self.cfg = cfg

    def build(self, ndim: int, channels: int) -> nn.Module:
        """A fresh :class:`BlindSpotNet` carrying a :class:`NoiseModel`."""
        kind = _noise_kind(self.cfg.noise_model)
        noise = NoiseModel(channels, "gaussian" if kind == "auto" else kind)
        net = BlindSpotNet(ndim, channels, self.cfg.depth, self.cfg.base_channels, noise)
        return net

    def prepare(self, net: nn.Module, canon: Any, norm: Normalisation) -> None:
        """Start the noise model from the image's classical noise estimate (:func:`..noise.estimate_noise`).

        Called once by the training loop before the first step of a fresh model.
        """
        noise: NoiseModel = net.noise  # type: ignore[assignment]
        spec = self.cfg.noise_model
        scale, offset = np.asarray(norm.scale), np.asarray(norm.offset)
        total, mean = [], []
        for c in range(canon.shape[2]):
            v = (stats_subset(canon, c) - offset[c]) / scale[c]
            total.append(float(v.var()))
            mean.append(float(v.mean()))
        est = estimate_noise(sample_planes(canon, norm, np.random.default_rng(0)), np.asarray(total), np.asarray(mean))
        kind = _noise_kind(spec)
        if kind == "auto":
            kind = "poisson-gaussian" if float(np.max(est.spread)) > AUTO_SPREAD else "gaussian"
        noise.set_kind(kind)
        classical = np.stack([est.a, est.b])
        if kind == "known":
            sigma_n = float(spec.split(":", 1)[1]) / scale
            noise.initialise(np.zeros_like(scale), sigma_n**2, offset, scale, classical)
        elif kind == "gaussian":
            noise.initialise(np.zeros_like(scale), est.b, offset, scale, [0 * est.b, est.b])
        else:
            noise.initialise(est.a, est.b, offset, scale, classical, np.stack([est.low, est.high]))

    def after_step(self, net: nn.Module) -> None:
        """Keep the learned noise variance at or above its floor (:meth:`.NoiseModel.project`)."""
        net.noise.project()  # type: ignore[operator,union-attr]

    def _split(
        self, net: nn.Module, x: torch.Tensor, margin: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Prior mean, prior variance and noise variance, all float32 (without ``margin``: :func:`.core_forward`)."""
        out = (core_forward(net, x, margin) if margin else net(x)).float()  # type: ignore[arg-type]
        c = x.shape[1]
        mu, logvar = out[:, :c], out[:, c:].clamp(*LOGVAR_RANGE)
        return mu, torch.exp(logvar), net.noise.variance(mu)  # type: ignore[operator,union-attr]

    def loss(
        self,
        net: nn.Module,
        x: torch.Tensor,
        target: torch.Tensor | None,
        gen: torch.Generator | None,
    ) -> torch.Tensor:
        """Negative log-likelihood of ``x`` under ``N(mu, var_x + var_n)``."""
        mu, var_x, var_n = self._split(net, x)
        return gaussian_nll(x.float(), mu, var_x + var_n)

    def param_groups(self, net: nn.Module, lr: float) -> list[dict[str, Any]]:
        """The network at ``lr``; the noise parameters (when learned) at a higher rate."""
        noise: NoiseModel = net.noise  # type: ignore[assignment]
        own = {id(p) for p in noise.parameters()}
        groups: list[dict[str, Any]] = [{"params": [p for p in net.parameters() if id(p) not in own], "lr": lr}]
        if noise.learned:
            groups.append({"params": list(noise.parameters()), "lr": lr * NOISE_LR_SCALE, "lr_scale": NOISE_LR_SCALE})
        return groups

    def infer(self, net: nn.Module, x: torch.Tensor, pcfg: PredictConfig, margin: int = 0) -> dict[str, torch.Tensor]:
        """Posterior mean (or the prior mean for ``output="prior"``), and its standard deviation (less ``margin``)."""
        with reuse_freed_memory():  # the window's feature maps reuse the last window's memory (no page faults)
            return self._infer(net, x, pcfg, margin)

    def _infer(self, net: nn.Module, x: torch.Tensor, pcfg: PredictConfig, margin: int) -> dict[str, torch.Tensor]:
        mu, var_x, var_n = self._split(net, x, margin)
        x = crop_margin(x, margin)
        if pcfg.output == "prior":
            return {"denoised": mu, "uncertainty": torch.sqrt(var_x)} if pcfg.uncertainty else {"denoised": mu}
        mean, var = posterior(x.float(), mu, var_x, var_n)
        return {"denoised": mean, "uncertainty": torch.sqrt(var)} if pcfg.uncertainty else {"denoised": mean}

    def state(self, net: nn.Module, scale: tuple[float, ...]) -> dict[str, Any]:
        """Fitted noise parameters in the image's intensity units (the noise model knows the scale)."""
        return net.noise.report()  # type: ignore[operator,union-attr]

    def bytes_per_pixel(self, net: nn.Module) -> int:
        """Prediction runs the directions one at a time: their fused features plus about ten maps at the peak.

        Measured peak (2D, depth 3, 1024^2 window): 0.96 / 1.43 / 2.64 kB per pixel at 16 / 32 / 48 channels.
        """
        directions = 4 if getattr(net, "ndim", 2) == 2 else 6
        return 4 * self.cfg.base_channels * (directions + 10) + 256
