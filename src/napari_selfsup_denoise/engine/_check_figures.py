"""The figures behind the self-check: crops of held-out pixels, run through the real prediction path.

Everything is computed in the model's normalised units, pooled over the crops
and channels. The crops are predicted by :func:`~.predict.predict` itself (with
their receptive-field context read from the image), so a fault anywhere
between the trained network and the returned image shows up here. One pass per
crop: a blind-spot pass returns the prior mean and variance, and the posterior
mean follows from them and the noise model by the same formula the prediction
path uses (:func:`.noise.posterior`).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import torch

from ..config import PredictConfig, TrainConfig
from ._check_budget import check_margin
from .events import drain
from .methods import Method
from .noise import estimate_noise, posterior
from .predict import ModelLike, predict


class Model(ModelLike, Protocol):
    """What the self-check needs from a trained model; :class:`.model.Model` is one (no import, no cycle)."""

    axes: str

    @property
    def config(self) -> TrainConfig:
        """How the model was trained."""

    @property
    def algorithm(self) -> str:
        """The algorithm name."""


class _Narrowed:
    """``model`` as prediction sees it in a self-check whose windows carry ``margin`` (:func:`.check_margin`)."""

    def __init__(self, model: ModelLike, margin: int) -> None:
        self._model, self._margin = model, margin
        self.net: torch.nn.Module = model.net
        self.method: Method = model.method
        self.ndim: int = model.ndim
        self.norm = model.norm

    @property
    def margin(self) -> int:
        """The check's context per side."""
        return self._margin

    @property
    def multiple(self) -> int:
        """Window sizes must be multiples of this."""
        return self._model.multiple

    def resolve_axes(self, shape: tuple[int, ...], axes: str | None) -> str:
        """Axes for an image of ``shape``, as the model resolves them."""
        return self._model.resolve_axes(shape, axes)

    def check_channels(self, channels: int) -> None:
        """Raise if the image has another number of channels than the model."""
        self._model.check_channels(channels)


def checked_model(model: Model) -> ModelLike:
    """``model`` with the margin its self-check windows carry (itself unless :func:`.check_margin` narrows it)."""
    margin = check_margin(model.margin, model.multiple, model.ndim, model.algorithm == "blindspot")
    return model if margin == model.margin else _Narrowed(model, margin)


# (sample index, (z0, z1), (y0, y1), (x0, x1)) in canonical coordinates
Box = tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]
MAX_PIXELS = 65_536  # per crop at most (before the cost budget of ._check_budget): ~1 % standard error
MAX_CROPS = 2
PLANES = 32  # 3D crops span up to this many planes: thicker crops waste less of their window on the Z margin


def _centred(size: int, want: int) -> tuple[int, int]:
    want = min(size, want)
    lo = (size - want) // 2
    return lo, lo + want


def _crop_box(n: int, spatial: tuple[int, ...], ys: tuple[int, int] | None, ndim: int) -> Box:
    """A central crop of sample ``n`` (in Y band ``ys`` when given) of at most :data:`MAX_PIXELS`."""
    zn, yn, xn = spatial
    zr = _centred(zn, PLANES) if ndim == 3 else (0, 1)
    depth = zr[1] - zr[0]
    yr = ys if ys is not None else _centred(yn, int(math.sqrt(MAX_PIXELS / depth)))
    height = yr[1] - yr[0]
    if ys is not None and height * depth > MAX_PIXELS // 8:  # a tall band: keep its middle rows
        mid = (yr[0] + yr[1]) // 2
        half = max(8, MAX_PIXELS // (16 * depth))
        yr = (max(yr[0], mid - half), min(yr[1], mid + half))
        height = yr[1] - yr[0]
    return n, zr, yr, _centred(xn, max(8, MAX_PIXELS // (height * depth)))


def held_out_boxes(sampler: Any, ndim: int) -> tuple[list[Box], bool]:
    """Crops of pixels the training never saw (from a :class:`~.data.PatchSampler`), and whether they exist.

    Without a validation split the crops come from the training image itself
    (the second value is then False).
    """
    spatial = tuple(sampler.canon.shape[3:])
    if not sampler.has_validation:
        return [_crop_box(sampler.samples[0], spatial, None, ndim)], False
    val = sampler.val_samples
    picks = sorted({val[0], val[-1]})[:MAX_CROPS]
    band = (sampler.y_train, spatial[1]) if sampler.y_train < spatial[1] else None
    return [_crop_box(n, spatial, band, ndim) for n in picks], True


def image_boxes(shape: tuple[int, ...], ndim: int) -> list[Box]:
    """Central crops of the first and the middle sample of a canonical ``shape``."""
    n = shape[0] * shape[1]
    return [_crop_box(k, tuple(shape[3:]), None, ndim) for k in sorted({0, n // 2})]


def _context(box: Box, margin: int, spatial: tuple[int, ...], ndim: int) -> tuple[list[slice], list[slice]]:
    """Slices of the read window (core plus margin, inside the image) and of the core within it."""
    ranges = box[1:] if ndim == 3 else box[2:]
    sizes = spatial if ndim == 3 else spatial[1:]
    win, core = [], []
    for (lo, hi), size in zip(ranges, sizes):
        a, b = max(0, lo - margin), min(size, hi + margin)
        win.append(slice(a, b))
        core.append(slice(lo - a, hi - a))
    return win, core


def predicted_crops(model: Model, canon: Any, boxes: list[Box], device: str) -> list[dict[str, np.ndarray]]:
    """Noisy input and what the model returns for every crop (normalised, ``(C, *spatial)``).

    One pass of the prediction path per crop. Blind-spot crops hold the prior
    mean and variance, the noise variance and the posterior mean (``output``),
    computed from them by :func:`.noise.posterior` as the prediction path does,
    and the classical estimate's noise variance (``var_c``, independent of the training).
    """
    blind = model.algorithm == "blindspot"
    pcfg = PredictConfig(device=device, output="prior", uncertainty=True) if blind else PredictConfig(device=device)
    spatial = tuple(canon.shape[3:])
    seen = checked_model(model)
    out = []
    for box in boxes:
        s, t = divmod(box[0], canon.shape[1])
        win, core = _context(box, seen.margin, spatial, model.ndim)
        z = win[0] if model.ndim == 3 else slice(box[1][0], box[1][1])
        arr = np.asarray(canon[s, t, :, z, win[-2], win[-1]], dtype=np.float32)
        arr = arr if model.ndim == 3 else arr[:, 0]
        axes = "CZYX" if model.ndim == 3 else "CYX"
        region = (slice(None), *core)
        res = drain(predict(seen, arr, pcfg, axes=axes, region=region))
        crop = {"y": arr[region]}
        if blind:
            crop["prior"], crop["prior_sd"] = res[0][region], res[1][region]
        else:
            crop["output"] = res[region]
            if canon.shape[1] > 1:  # a time-lapse: the same crop in a neighbouring frame (temporal_capped)
                crop["y_next"] = _neighbour_frame(canon, s, t, box, model.ndim)
        out.append(_normalised(model, crop))
    return out


def _neighbour_frame(canon: Any, s: int, t: int, box: Box, ndim: int) -> np.ndarray:
    """The noisy core of ``box`` in frame ``t + 1`` of sample ``s`` (``t - 1`` for the last frame)."""
    near = t + 1 if t + 1 < canon.shape[1] else t - 1
    zs, ys, xs = (slice(lo, hi) for lo, hi in box[1:])
    arr = np.asarray(canon[s, near, :, zs, ys, xs], dtype=np.float32)
    return arr if ndim == 3 else arr[:, 0]


def temporal_capped(crops: list[dict[str, np.ndarray]], var: list[np.ndarray]) -> list[np.ndarray]:
    """``var`` lowered, per channel, to the noise variance that frame differences show where that is lower.

    Half the mean squared difference of a crop and the same crop in the next frame is the noise
    variance plus whatever moved: an upper bound free of the spatial structure that biases the
    classical estimate. On the real telomere time-lapse (a static scene, noise correlated along Y)
    the classical estimate read 30-60 % high, and a good structN2V result failed n2v_residual
    (0.65-0.70); a moving scene leaves ``var`` as it is. Crops without a neighbour frame: unchanged.
    """
    if not crops or not all("y_next" in c for c in crops):
        return var
    ch = crops[0]["y"].shape[0]
    diff = sum(((c["y_next"] - c["y"]).astype(np.float64) ** 2).reshape(ch, -1).sum(axis=1) / 2 for c in crops)
    ref = sum(v.astype(np.float64).reshape(ch, -1).sum(axis=1) for v in var)
    share = np.minimum(1.0, np.asarray(diff) / np.maximum(np.asarray(ref), 1e-30)).astype(np.float32)
    return [v * share.reshape((-1,) + (1,) * (v.ndim - 1)) for v in var]


def _normalised(model: Model, crop: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    res = {k: model.norm.forward(v, channel_axis=0) for k, v in crop.items() if k != "prior_sd"}
    if "prior_sd" in crop:
        sc = np.asarray(model.norm.scale, np.float32).reshape(-1, *[1] * (crop["prior_sd"].ndim - 1))
        res["var_x"] = (crop["prior_sd"] / sc) ** 2
        noise: Any = model.net.noise
        with torch.no_grad():
            mu = torch.from_numpy(res["prior"][None]).to(noise.log_var.device)
            var_n = noise.variance(mu)
            y, var_x = (torch.from_numpy(res[k][None]).to(mu.device) for k in ("y", "var_x"))
            post, _ = posterior(y, mu, var_x, var_n)
            var_c = noise.reference_variance(mu)  # independent of the training: for the output choice
        res["var_n"], res["output"], res["var_c"] = (v[0].float().cpu().numpy() for v in (var_n, post, var_c))
    return res


def _planes(y: np.ndarray) -> list[np.ndarray]:
    """2D planes ``(C, Y, X)`` of a crop ``(C, [Z,] Y, X)``."""
    return [y] if y.ndim == 3 else [y[:, k] for k in range(y.shape[1])]


def classical_variance(crops: list[dict[str, np.ndarray]], at: str) -> list[np.ndarray]:
    """Noise variance of a classical local estimate (fitted on the noisy crops), evaluated at ``crops[i][at]``."""
    planes = [p for c in crops for p in _planes(c["y"])]
    ys = np.concatenate([c["y"].reshape(c["y"].shape[0], -1) for c in crops], axis=1)
    est = estimate_noise(planes, ys.var(axis=1), ys.mean(axis=1))
    res = []
    for c in crops:
        shape = (-1,) + (1,) * (c[at].ndim - 1)
        var = est.a.reshape(shape) * c[at] + est.b.reshape(shape)
        res.append(np.maximum(var, 1e-6 * float(np.max(est.b))).astype(np.float32))
    return res


def ratio(num: list[np.ndarray], den: list[np.ndarray]) -> float:
    """``sum(num) / sum(den)`` over all crops."""
    return float(
        sum(float(np.sum(a, dtype=np.float64)) for a in num)
        / max(sum(float(np.sum(b, dtype=np.float64)) for b in den), 1e-30)
    )


def lag1(resid: list[np.ndarray], var: list[np.ndarray]) -> float:
    """Lag-1 autocorrelation (mean of Y and X neighbours) of the residual standardised by ``var``."""
    num = den = 0.0
    for r, v in zip(resid, var):
        e = r / np.sqrt(v)
        e = e - e.mean()
        num += float(np.sum(e[..., 1:, :] * e[..., :-1, :])) / (e[..., 1:, :].size or 1)
        num += float(np.sum(e[..., :, 1:] * e[..., :, :-1])) / (e[..., :, 1:].size or 1)
        den += 2.0 * float(np.mean(e * e))
    return num / max(den, 1e-30)


def correlation(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Pearson correlation of two lists of arrays, pooled."""
    x = np.concatenate([v.ravel() for v in a]).astype(np.float64)
    y = np.concatenate([v.ravel() for v in b]).astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    return float(np.sum(x * y) / max(math.sqrt(float(np.sum(x * x)) * float(np.sum(y * y))), 1e-30))
