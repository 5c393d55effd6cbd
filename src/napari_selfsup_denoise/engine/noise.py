"""Noise models for the blind-spot network, and a classical noise estimate to start them from.

Everything here works in normalised units ``y_n = (y - offset) / scale`` (per
channel, see :class:`~.data.Normalisation`). The noise variance is
``var_n = a_n * mu_n + b_n`` (``a_n = 0`` for Gaussian noise). In the image's
intensity units the same model reads ``var = a * mu + b`` with::

    a = a_n * scale
    b = b_n * scale**2 - a * offset

``b_n`` is the noise variance at the image's mean intensity, so it is positive
for any physical noise; both are stored as logarithms. The starting value
matters (docs/benchmarks.md): the likelihood only sees prior + noise variance.
Training starts from the classical variance-vs-mean fit and never goes below
:data:`FLOOR` times it (the parameters are projected back onto the floor after
every step, so a level pushed down early comes back as soon as the gradient
turns). An earlier start at "all of the image variance is noise" needed ~60
steps to come down and, in 1 seed in 3, left the network and the noise model in
a bad split (issue 9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .noise_correlation import laplacian_share, measure_planes

KINDS = ("gaussian", "poisson-gaussian", "known")
MIN_VAR = 1e-6
# The learned variance never drops below this share of the classical estimate: a noise level that
# settles too low makes the posterior mean worse than the prior (seen on the nuclei benchmarks).
FLOOR = 0.8
_BINS = 16


def posterior(
    y: torch.Tensor, mu: torch.Tensor, var_x: torch.Tensor, var_n: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and variance of a Gaussian prior ``N(mu, var_x)`` and observation ``y ~ N(x, var_n)``.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``(y * var_x + mu * var_n) / (var_x + var_n)`` and ``var_x * var_n / (var_x + var_n)``.
    """
    total = var_x + var_n
    return (y * var_x + mu * var_n) / total, var_x * var_n / total


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``y`` under ``N(mu, var)`` (constant dropped)."""
    return 0.5 * torch.mean(torch.log(var) + (y - mu) ** 2 / var)


@dataclass(frozen=True)
class NoiseEstimate:
    """Classical per-channel noise estimate in normalised units.

    Attributes
    ----------
    a, b : numpy.ndarray
        Slope and intercept of the local variance-vs-mean fit (``a >= 0``).
    total : numpy.ndarray
        Variance of the whole image (signal and noise).
    mean : numpy.ndarray
        Mean intensity of the sample.
    spread : numpy.ndarray
        Relative change of the fitted noise variance from ``low`` to ``high``
        (near 0 for signal-independent noise).
    low, high : numpy.ndarray
        2nd and 98th percentile of the local mean: where the learned model is anchored.
    """

    a: np.ndarray
    b: np.ndarray
    total: np.ndarray
    mean: np.ndarray
    spread: np.ndarray
    low: np.ndarray
    high: np.ndarray


def _residual(plane: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signal-cancelling residual with the noise's variance, and the local 5-pixel mean."""
    c = plane[1:-1, 1:-1]
    nb = plane[:-2, 1:-1] + plane[2:, 1:-1] + plane[1:-1, :-2] + plane[1:-1, 2:]
    return (4 * c - nb) / math.sqrt(20.0), (c + nb) / 5.0


def _fit_channel(planes: list[np.ndarray]) -> tuple[float, float, float, float, float]:
    """Robust binned variance of the residual against the local mean, fitted by a line."""
    rs, ms = zip(*(_residual(p) for p in planes))
    r, m = np.concatenate([x.ravel() for x in rs]), np.concatenate([x.ravel() for x in ms])
    edges = np.quantile(m, np.linspace(0, 1, _BINS + 1))
    idx = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, _BINS - 1)
    centres, variances = [], []
    for k in range(_BINS):
        rk = r[idx == k]
        if rk.size < 50:
            continue
        mad = np.median(np.abs(rk - np.median(rk)))  # robust against edges in the signal
        centres.append(float(np.mean(m[idx == k])))
        variances.append(float((1.4826 * mad) ** 2))
    # The Laplacian sees less of noise correlated between neighbours (the real telomere time-lapse: ~0.47 of it)
    cen, var = np.asarray(centres), np.asarray(variances) / laplacian_share(measure_planes(planes))
    a, b = np.polyfit(cen, var, 1) if len(cen) >= 2 and np.ptp(cen) > 0 else (0.0, float(np.mean(var)))
    if a <= 0:
        a, b = 0.0, float(np.median(var))
    lo, hi = (float(q) for q in np.quantile(m, [0.02, 0.98]))
    spread = a * (hi - lo) / max(a * lo + b, MIN_VAR)
    return float(a), float(max(b, MIN_VAR)), float(spread), lo, hi


def estimate_noise(planes: list[np.ndarray], total: np.ndarray, mean: np.ndarray) -> NoiseEstimate:
    """Fit ``var = a * mean + b`` per channel on normalised planes ``(C, Y, X)``.

    Parameters
    ----------
    planes : list of numpy.ndarray
        Normalised 2D crops ``(C, Y, X)`` of the image (each at least 3 x 3).
    total, mean : numpy.ndarray
        Per-channel variance and mean of the whole (normalised) image.
    """
    fits = [_fit_channel([p[c].astype(np.float64) for p in planes]) for c in range(planes[0].shape[0])]
    a, b, spread, lo, hi = (np.asarray(v, dtype=np.float64) for v in zip(*fits))
    return NoiseEstimate(a, b, np.asarray(total, np.float64), np.asarray(mean, np.float64), spread, lo, hi)


class NoiseModel(nn.Module):
    """Per-channel noise variance in normalised units, learned as log-variances at two anchor intensities.

    The Poisson-Gaussian line ``a_n * mu + b_n`` is held by its values at a low
    and a high intensity of the image (2nd and 98th percentile) rather than by
    slope and intercept: each end is then fitted by the pixels near it, and the
    line cannot pivot into negative variances, which made ``(a, b)`` unstable.

    Parameters
    ----------
    channels : int
        Image channels.
    kind : str
        ``gaussian`` (one learned variance), ``poisson-gaussian`` (the line) or
        ``known`` (fixed variance). Stored in a buffer so a saved model knows
        what ``auto`` chose.
    """

    kind_code: torch.Tensor
    anchors: torch.Tensor
    offset: torch.Tensor
    scale: torch.Tensor
    classical: torch.Tensor
    floor: torch.Tensor

    def __init__(self, channels: int, kind: str = "gaussian") -> None:
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(2, channels))
        self.register_buffer("kind_code", torch.tensor(KINDS.index(kind)))
        self.register_buffer("anchors", torch.tensor([[-1.0], [1.0]]).repeat(1, channels))
        self.register_buffer("offset", torch.zeros(channels))
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("classical", torch.zeros(2, channels))
        self.register_buffer("floor", torch.zeros(2, channels))

    @property
    def kind(self) -> str:
        """``gaussian``, ``poisson-gaussian`` or ``known``.

        Read from the buffer only when the buffer changed (it was moved, loaded or set): reading a
        GPU tensor waits for the device, and the training step asks for the kind several times.
        """
        code, seen = self.kind_code, self.__dict__.get("_kind_seen")
        version = code._version if not code.is_inference() else -1
        if seen is None or seen[0] is not code or seen[1] != version or version < 0:
            seen = (code, version, KINDS[int(code)])
            self.__dict__["_kind_seen"] = seen
        return seen[2]

    @property
    def learned(self) -> bool:
        """Whether training should update the parameters."""
        return self.kind != "known"

    def set_kind(self, kind: str) -> None:
        """Choose the model (``gaussian``, ``poisson-gaussian`` or ``known``)."""
        self.kind_code.fill_(KINDS.index(kind))

    def _levels(self) -> torch.Tensor:
        """The variances at the two anchors, ``max(exp(log_var), floor)`` with ``exp(log_var)``'s gradient."""
        v = torch.exp(self.log_var.float())
        return v + (self.floor - v).clamp(min=0).detach()  # it can come back up from the floor

    def line(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Slope and intercept ``(a_n, b_n)`` per channel in normalised units (``a_n = 0`` unless Poisson-Gaussian)."""
        v = self._levels()
        if self.kind != "poisson-gaussian":
            return torch.zeros_like(v[0]), v[0]
        a = (v[1] - v[0]) / (self.anchors[1] - self.anchors[0]).clamp(min=1e-6)
        return a, v[0] - a * self.anchors[0]

    def _log_floor(self) -> torch.Tensor:
        """``log(floor)``, computed again only when the floor changed (it is set, loaded or moved, not trained)."""
        floor, seen = self.floor, self.__dict__.get("_log_floor_seen")
        version = floor._version if not floor.is_inference() else -1
        if seen is None or seen[0] is not floor or seen[1] != version or version < 0:
            seen = (floor, version, torch.log(floor.clamp(min=MIN_VAR)))
            self.__dict__["_log_floor_seen"] = seen
        return seen[2]

    @torch.no_grad()
    def project(self) -> None:
        """Raise learned log-variances that fell below the floor back onto it.

        :meth:`line` already uses ``max(variance, floor)``; without this the parameter
        itself could drift far below the floor and take as many steps to come back.
        """
        if self.learned:
            self.log_var.clamp_(min=self._log_floor())

    def variance(self, mu: torch.Tensor) -> torch.Tensor:
        """Noise variance for the (normalised) signal ``mu`` of shape ``(B, C, *spatial)``."""
        shape = (1, -1) + (1,) * (mu.ndim - 2)
        if self.kind != "poisson-gaussian":
            return self._levels()[0].view(shape).expand_as(mu)
        a, b = (t.view(shape) for t in self.line())
        return torch.clamp(a * mu.float() + b, min=MIN_VAR)

    def reference_variance(self, mu: torch.Tensor) -> torch.Tensor:
        """The classical estimate's noise variance (kept at :meth:`initialise`) for the signal ``mu``.

        Unlike :meth:`variance` it does not depend on the training, which can drift the learned level
        (down to its floor early in a short run from random weights, issue 9). A ``known`` model, or one
        saved without a classical estimate, returns :meth:`variance`.
        """
        if self.kind == "known" or not bool(torch.any(self.classical > 0)):
            return self.variance(mu)
        shape = (1, -1) + (1,) * (mu.ndim - 2)
        a, b = (t.view(shape) for t in self.classical)
        a = a if self.kind == "poisson-gaussian" else torch.zeros_like(a)
        return torch.clamp(a * mu.float() + b, min=MIN_VAR).expand_as(mu)

    @torch.no_grad()
    def initialise(
        self, a_n: Any, b_n: Any, offset: Any, scale: Any, classical: Any = None, anchors: Any = None
    ) -> None:
        """Set the line ``a_n * mu + b_n`` (normalised units) and remember the normalisation for reporting.

        ``classical`` is the ``(a_n, b_n)`` of the classical estimate, kept to report next to the fit and,
        for learned models, as a floor (:data:`FLOOR` times its variance at the anchors);
        ``anchors`` the two intensities where the line is held (defaults to -1 and 1).
        """
        if anchors is not None:
            self.anchors.copy_(torch.as_tensor(np.asarray(anchors), dtype=torch.float32))
        if classical is not None:
            self.classical.copy_(torch.as_tensor(np.asarray(classical), dtype=torch.float32))
            if self.learned:
                ca, cb = self.classical
                self.floor.copy_(FLOOR * torch.clamp(ca * self.anchors + cb, min=MIN_VAR))
        a = torch.as_tensor(np.asarray(a_n, dtype=np.float64), dtype=torch.float32)
        b = torch.as_tensor(np.asarray(b_n, dtype=np.float64), dtype=torch.float32)
        ends = torch.clamp(a * self.anchors + b, min=MIN_VAR)
        self.log_var.copy_(torch.log(ends))
        self.offset.copy_(torch.as_tensor(offset, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def report(self) -> dict[str, Any]:
        """Fitted parameters in the image's intensity units (floats for one channel, else lists).

        The device is read once, for all of them (on a GPU each read waits for the queued work).
        """
        parts = (*(t.detach() for t in self.line()), self.classical, self.scale, self.offset)
        flat = torch.cat([t.float().reshape(-1) for t in parts]).tolist()
        a_n, b_n, ca, cb, sc, off = np.asarray(flat, dtype=np.float64).reshape(6, -1)
        out: dict[str, Any] = {"noise_model": self.kind}
        if self.kind == "poisson-gaussian":
            a, a_c = a_n * sc, ca * sc
            out["noise_a"], out["noise_b"] = _plain(a), _plain(b_n * sc**2 - a * off)
            out["classical_a"], out["classical_b"] = _plain(a_c), _plain(cb * sc**2 - a_c * off)
        else:
            out["noise_sigma"] = _plain(np.sqrt(b_n) * sc)
            if self.kind == "gaussian":
                out["classical_sigma"] = _plain(np.sqrt(cb) * sc)
        return out


def _plain(v: np.ndarray) -> float | list[float]:
    vals = [round(float(x), 6) for x in v.reshape(-1)]
    return vals[0] if len(vals) == 1 else vals
