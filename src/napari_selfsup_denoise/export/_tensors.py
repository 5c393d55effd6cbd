"""Test tensors and the cover image of an exported package, cut from the training image."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.arrays import canonical
from ..engine.model import Model
from ..engine.windows import reflect_index

TEST_EDGE = 64  # 2D test input edge; 3D uses half of it (the package test runs every weights format on it)


class ExportInputError(ValueError):
    """The arguments of an export cannot be used (missing image, bad name, existing or unwritable path)."""


def min_tile(model: Model) -> int:
    """Smallest input edge of the exported module: a halo of ``margin`` on each side of one pooling multiple."""
    return 2 * model.margin + model.multiple


def test_input(model: Model, image: Any, axes: str | None) -> np.ndarray:
    """A crop ``(1, C, [Z,] Y, X)`` of ``image`` that fits one tile; its edges are multiples of the network's."""
    axes = model.resolve_axes(tuple(image.shape), axes)
    canon = canonical(image, axes)
    model.check_channels(canon.shape[2])
    m = model.multiple
    edge = TEST_EDGE if model.ndim == 2 else TEST_EDGE // 2
    sizes = canon.shape[6 - model.ndim :] if model.ndim == 3 else canon.shape[4:]
    least = min_tile(model)
    crop = [max(least, min(edge, n - n % m)) for n in sizes]
    # Mirrored (as our prediction mirrors) where the image is smaller than the smallest tile.
    idx = [reflect_index(np.arange(c) + max(0, (n - c) // 2), n) for n, c in zip(sizes, crop)]
    s, t = canon.shape[0] // 2, canon.shape[1] // 2
    bounds = [slice(int(i.min()), int(i.max()) + 1) for i in idx]
    zsl = bounds[0] if model.ndim == 3 else slice(0, 1)
    block = np.asarray(canon[s, t, :, zsl, bounds[-2], bounds[-1]], dtype=np.float32)
    block = block if model.ndim == 3 else block[:, 0]
    for ax, (i, b) in enumerate(zip(idx, bounds)):
        block = np.take(block, i - b.start, axis=ax + 1)
    if not np.isfinite(block).all():
        raise ExportInputError("the image crop used as the package's test input holds NaN or infinite values")
    return block[None]


def model_output(model: Model, x: np.ndarray, output: str) -> np.ndarray:
    """Our own denoising of a test input ``(1, C, ...)`` in one tile (``output``: posterior or prior), float32, CPU.

    No check on ``x``: the package computes the output the model's training check decided on, whatever the image.
    """
    spatial = "ZYX"[-model.ndim :]
    tile = max(x.shape[2:])
    y = model.denoise(x[0], "C" + spatial, tile=tile, device="cpu", precision="fp32", output=output, check=False)
    return np.asarray(y)[None]


def cover(noisy: np.ndarray, denoised: np.ndarray) -> np.ndarray:
    """RGB uint8 image: the noisy input beside the denoised output (first channel, middle Z plane)."""

    def plane(a: np.ndarray) -> np.ndarray:
        a = a[0, 0]
        return a[a.shape[0] // 2] if a.ndim == 3 else a

    left, right = plane(noisy), plane(denoised)
    lo, hi = np.percentile(left, [0.5, 99.5])
    scale = (hi - lo) or 1.0
    gap = np.full((left.shape[0], max(1, left.shape[1] // 32)), hi, dtype=np.float32)
    both = np.concatenate([left, gap, right], axis=1)
    grey = np.clip((both - lo) / scale * 255, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)
