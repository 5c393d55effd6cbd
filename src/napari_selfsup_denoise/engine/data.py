"""Normalisation, patch sampling with augmentation, and the validation split.

Arrays here are in canonical order ``S, T, C, Z, Y, X`` (see :mod:`..axes`);
2D data has ``Z == 1``. Patches are cut straight from the caller's array, one
small copy per patch, so the whole image is never copied per step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .patches import DevicePatches, dihedral, fits

_MAX_STATS_VALUES = 8_000_000
_MIN_STATS_FRAMES = 4  # a large series is sampled in at least this many time points (or samples)
_MAX_STATS_READS = 256  # more frames than this are sampled by one strided read


class DataError(ValueError):
    """The image cannot be used as it is (NaNs, too small, empty)."""


@dataclass(frozen=True)
class Normalisation:
    """Per-channel affine normalisation ``(x - offset) / scale``."""

    method: str
    offset: tuple[float, ...]
    scale: tuple[float, ...]

    def forward(self, x: np.ndarray, channel_axis: int) -> np.ndarray:
        """Normalise ``x`` (float32 result)."""
        return ((x - self._shape(self.offset, x, channel_axis)) / self._shape(self.scale, x, channel_axis)).astype(
            np.float32, copy=False
        )

    def inverse(self, x: np.ndarray, channel_axis: int) -> np.ndarray:
        """Map normalised values back to the image's intensity scale."""
        return (x * self._shape(self.scale, x, channel_axis) + self._shape(self.offset, x, channel_axis)).astype(
            np.float32, copy=False
        )

    @staticmethod
    def _shape(v: tuple[float, ...], x: np.ndarray, axis: int) -> np.ndarray:
        shape = [1] * x.ndim
        shape[axis] = len(v)
        return np.asarray(v, dtype=np.float32).reshape(shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"method": self.method, "offset": list(self.offset), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalisation:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["method"]), tuple(map(float, d["offset"])), tuple(map(float, d["scale"])))


def stats_subset(canon: Any, channel: int) -> np.ndarray:
    """Up to ~8 M values of one channel: all of them, or evenly spaced samples and time points, strided if need be.

    A large series is sampled by whole time points (and samples) rather than by
    rows of every one: a Zarr series chunked per frame then decodes the chunks of
    a few frames, not all of them. Within each, Z, Y and X are strided evenly.
    Series of very many small frames are strided over every axis (one read).
    """
    s_n, t_n, _, z_n, y_n, x_n = canon.shape
    frames, per_frame = s_n * t_n, z_n * y_n * x_n
    if frames * per_frame <= _MAX_STATS_VALUES:
        return np.asarray(canon[:, :, channel], dtype=np.float64).ravel()
    count = min(frames, max(_MIN_STATS_FRAMES, _MAX_STATS_VALUES // per_frame))
    if count > _MAX_STATS_READS:  # many small frames: one strided read
        step = max(1, math.ceil((frames * per_frame / _MAX_STATS_VALUES) ** (1 / 3)))
        return np.asarray(canon[:, :, channel, ::step, ::step, ::step], dtype=np.float64).ravel()
    step = max(1, math.ceil((count * per_frame / _MAX_STATS_VALUES) ** (1 / 3)))
    values = []
    for f in np.unique(np.linspace(0, frames - 1, count).round().astype(int)):
        s, t = divmod(int(f), t_n)
        values.append(np.asarray(canon[s, t, channel, ::step, ::step, ::step], dtype=np.float64).ravel())
    return np.concatenate(values)


def fit_normalisation(
    canon: Any, method: str = "meanstd", percentiles: tuple[float, float] = (1.0, 99.8)
) -> Normalisation:
    """Fit per-channel normalisation on a canonical array.

    Raises
    ------
    DataError
        If the image is empty, holds NaN/inf, or is constant.
    """
    if int(np.prod(canon.shape)) == 0:
        raise DataError(f"the image is empty (shape {tuple(canon.shape)})")
    offsets, scales = [], []
    for c in range(canon.shape[2]):
        v = stats_subset(canon, c)
        bad = int(np.count_nonzero(~np.isfinite(v)))
        if bad:
            raise DataError(
                f"channel {c} holds NaN or infinite values ({bad} in a sample of {v.size}); "
                "fill them (e.g. with the median) or crop them away before denoising"
            )
        if method == "percentile":
            lo, hi = np.percentile(v, percentiles)
            off, sc = float(lo), float(hi - lo)
        else:
            off, sc = float(v.mean()), float(v.std())
        if not sc > 0:
            raise DataError(f"channel {c} is constant (value {off:g}); there is nothing to denoise")
        offsets.append(off)
        scales.append(sc)
    return Normalisation(method, tuple(offsets), tuple(scales))


def check_finite(canon: Any) -> None:
    """Raise :class:`DataError` if any value is NaN or infinite (checked sample by sample)."""
    if np.dtype(canon.dtype).kind != "f":
        return  # integers cannot hold NaN; skip reading a possibly huge lazy array
    for s in range(canon.shape[0]):
        for t in range(canon.shape[1]):
            block = np.asarray(canon[s, t])
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                n = int(np.count_nonzero(~np.isfinite(block)))
                raise DataError(
                    f"the image holds {n} NaN or infinite values (sample {s}, time {t}); "
                    "fill them (e.g. with the median) or crop them away before denoising"
                )


class PatchSampler:
    """Draw random, augmented, normalised patches from one or two canonical arrays.

    Parameters
    ----------
    canon : array-like
        Input, canonical order ``S, T, C, Z, Y, X``.
    norm : Normalisation
        Applied to input and target alike.
    patch : tuple of int
        Patch shape over ``Z, Y, X`` (``Z`` is 1 for 2D).
    rng : numpy.random.Generator
        Source of randomness (seeded by the caller).
    val_fraction : float
        Held-out share: whole samples when there are >= 5, else a band at the
        bottom of Y when the image is tall enough, else no validation.
    augment : bool
        Random 90-degree rotations and flips in YX.
    target : array-like, optional
        Second noisy acquisition (Noise2Noise), cut at the same coordinates.
    half_turns : bool
        Turn by 0 or 180 degrees only (with the flips), so Y stays Y: for structN2V's mask along Y or X.
    device : torch.device, optional
        The training device. When the normalised data fits there (:func:`.patches.fits`), it is held
        there and batches are cut there (:class:`.patches.DevicePatches`: the same batches, no
        image data moved per step); otherwise (and when None) patches are cut on the host.
    """

    def __init__(
        self,
        canon: Any,
        norm: Normalisation,
        patch: tuple[int, int, int],
        rng: np.random.Generator,
        val_fraction: float = 0.1,
        augment: bool = True,
        target: Any = None,
        device: torch.device | None = None,
        half_turns: bool = False,
    ) -> None:
        self.canon, self.target, self.norm, self.turns = canon, target, norm, 2 if half_turns else 3
        self.patch, self.rng, self.augment = patch, rng, augment
        n = canon.shape[0] * canon.shape[1]
        spatial = canon.shape[3:]
        if any(p > s for p, s in zip(patch, spatial)):
            raise DataError(f"patch {patch} is larger than the image's Z, Y, X extent {spatial}")
        self.samples = list(range(n))
        self.val_samples: list[int] = []
        self.y_train = spatial[1]
        if val_fraction > 0 and n >= 5:
            k = max(1, round(n * val_fraction))
            self.samples, self.val_samples = self.samples[:-k], self.samples[-k:]
        elif val_fraction > 0:
            band = max(patch[1], round(spatial[1] * val_fraction))
            if spatial[1] - band >= patch[1]:
                self.y_train = spatial[1] - band
                self.val_samples = self.samples
        self._val: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self.on_device: DevicePatches | None = None
        arrays = [canon] if target is None else [canon, target]
        held = device is not None and device.type in ("cpu", "cuda")  # MPS: cut on the host as before (untested there)
        if held and device is not None and fits(4 * int(np.prod(canon.shape)) * len(arrays), device):
            self.on_device = DevicePatches(arrays, norm, patch, device)

    @property
    def has_validation(self) -> bool:
        """Whether a validation split exists."""
        return bool(self.val_samples)

    def _cut(self, arr: Any, n: int, corner: tuple[int, int, int]) -> np.ndarray:
        s, t = divmod(n, self.canon.shape[1])
        z, y, x = corner
        pz, py, px = self.patch
        block = np.asarray(arr[s, t, :, z : z + pz, y : y + py, x : x + px], dtype=np.float32)
        return self.norm.forward(block, channel_axis=0)

    def _draw(self, rng: np.random.Generator, val: bool) -> tuple[int, tuple[int, int, int]]:
        zs, ys, xs = self.canon.shape[3:]
        pz, py, px = self.patch
        pool = self.val_samples if val else self.samples
        n = pool[int(rng.integers(len(pool)))]
        if val and self.y_train < ys:
            y = int(rng.integers(self.y_train, ys - py + 1))
        else:
            y = int(rng.integers(0, (ys if val else self.y_train) - py + 1))
        return n, (int(rng.integers(0, zs - pz + 1)), y, int(rng.integers(0, xs - px + 1)))

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A training batch ``(B, C, Z, Y, X)`` (and the Noise2Noise target, if any)."""
        return self._batch(size, self.rng, val=False, augment=self.augment)

    def val_batch(self, size: int = 16) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fixed validation batch (drawn once with its own seed)."""
        if self._val is None:
            self._val = self._batch(size, np.random.default_rng(12345), val=True, augment=False)
        return self._val

    def _batch(
        self, size: int, rng: np.random.Generator, val: bool, augment: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        picks = []
        for _ in range(size):  # draws in the order of the host path, patch by patch
            n, corner = self._draw(rng, val)
            k, flip = (int(rng.integers(4)) & self.turns, bool(rng.integers(2))) if augment else (0, False)
            picks.append((n, corner, k, flip))
        if self.on_device is not None:
            x, *ts = self.on_device.cut(picks)
            return x, (ts[0] if ts else None)
        xs = [dihedral(self._cut(self.canon, n, c), k, f) for n, c, k, f in picks]
        ts = [dihedral(self._cut(self.target, n, c), k, f) for n, c, k, f in picks] if self.target is not None else []
        x = torch.from_numpy(np.stack(xs))
        t = torch.from_numpy(np.stack(ts)) if ts else None
        return x, t
