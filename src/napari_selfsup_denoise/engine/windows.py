"""Input windows and output blocks of tiled prediction, built on the compute device.

The host only reads the in-image block a window needs (in the image's own
dtype) into a pinned buffer when the device is a GPU. On the device, the block
is mirrored into the window and normalised in one pass per piece (a window is
at most 3 pieces per axis: mirrored border, interior, mirrored border), written
straight into a batch of windows; outputs are cropped and de-normalised there too.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .data import DataError, Normalisation

Box = tuple[tuple[int, int], ...]

# dtypes torch holds natively; anything else is converted to float32 on the host
_NATIVE = {np.dtype(t) for t in ("float32", "float16", "float64", "uint8", "int8", "int16", "int32", "int64")}
LIMITED = set()  # torch dtypes with few kernels: converted to float32 on the device before use off the CPU
if hasattr(torch, "uint16"):
    _NATIVE.add(np.dtype("uint16"))
    LIMITED.add(torch.uint16)


def reflect_index(idx: np.ndarray, size: int) -> np.ndarray:
    """Mirror indices into ``[0, size)`` (edge pixel not repeated), for any offset."""
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    i = np.mod(idx, period)
    return np.where(i >= size, period - i, i)


def window_index(box: Box, sizes: tuple[int, ...], margin: int, multiple: int) -> list[np.ndarray]:
    """Image index of every window position, per spatial axis (core rounded up to ``multiple``, plus ``margin``)."""
    idx = []
    for (lo, hi), size in zip(box, sizes):
        hi_al = lo + -(-(hi - lo) // multiple) * multiple
        idx.append(reflect_index(np.arange(lo - margin, hi_al + margin), size))
    return idx


def window_shape(box: Box, margin: int, multiple: int) -> tuple[int, ...]:
    """Spatial shape of the window of a core box."""
    return tuple(-(-(hi - lo) // multiple) * multiple + 2 * margin for lo, hi in box)


@dataclass
class Raw:
    """The in-image block a tile's window needs: ``data`` ``(C, *spatial)`` starting at ``origin``."""

    data: torch.Tensor
    origin: tuple[int, ...]


def read_raw(canon: Any, s: int, t: int, box: Box, margin: int, multiple: int, ndim: int, pin: bool) -> Raw:
    """Read the block under a tile's window (mirrored positions included), unconverted; checked for NaN.

    Raises
    ------
    DataError
        If the block holds NaN or infinite values.
    """
    sizes = canon.shape[6 - ndim :]
    idx = window_index(box, sizes, margin, multiple)
    bounds = [slice(int(i.min()), int(i.max()) + 1) for i in idx]
    zsl = bounds[0] if ndim == 3 else slice(0, 1)
    block = np.asarray(canon[s, t, :, zsl, bounds[-2], bounds[-1]])
    if ndim == 2:
        block = block[:, 0]
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        raise DataError(f"the image holds NaN or infinite values (sample {s}, time {t}, near {box})")
    if block.dtype not in _NATIVE:
        block = block.astype(np.float32)
    tensor = torch.from_numpy(block)
    if pin:
        tensor = torch.empty(block.shape, dtype=tensor.dtype, pin_memory=True).copy_(tensor)
    return Raw(tensor, tuple(b.start for b in bounds))


def _runs(idx: np.ndarray) -> list[tuple[slice, slice, bool]]:
    """Split window positions into runs of ascending or descending image indices: ``(dst, src, flipped)``."""
    runs, start = [], 0
    n = len(idx)
    while start < n:
        end = start + 1
        step = int(idx[end] - idx[start]) if end < n else 1
        if step not in (1, -1):
            step = 1
        while end < n and idx[end] - idx[end - 1] == step:
            end += 1
        lo, hi = (idx[start], idx[end - 1]) if step == 1 else (idx[end - 1], idx[start])
        runs.append((slice(start, end), slice(int(lo), int(hi) + 1), step == -1))
        start = end
    return runs


class Normaliser:
    """Per-channel normalisation and its inverse as device tensors for ``ndim`` spatial axes."""

    def __init__(self, norm: Normalisation, ndim: int, device: torch.device) -> None:
        shape = (-1,) + (1,) * ndim
        scale = np.asarray(norm.scale, np.float64)
        offset = np.asarray(norm.offset, np.float64)
        as_t = lambda v: torch.as_tensor(v, dtype=torch.float32).reshape(shape).to(device)  # noqa: E731
        self.inv, self.bias = as_t(1.0 / scale), as_t(-offset / scale)
        self.scale, self.offset = as_t(scale), as_t(offset)

    def window_into(self, dst: torch.Tensor, raw: torch.Tensor, idx: list[np.ndarray], origin: tuple[int, ...]) -> None:
        """Mirror ``raw`` into ``dst`` ``(C, *window)`` following ``idx`` and normalise it, piece by piece."""
        per_axis = [_runs(i - o) for i, o in zip(idx, origin)]
        for pieces in itertools.product(*per_axis):
            src = raw[(slice(None), *(p[1] for p in pieces))]
            flips = [d + 1 for d, p in enumerate(pieces) if p[2]]
            if flips:  # unsigned 16-bit tensors cannot be flipped: border pieces are converted first (small)
                src = torch.flip(src.float() if src.dtype in LIMITED else src, dims=flips)
            torch.addcmul(self.bias, src, self.inv, out=dst[(slice(None), *(p[0] for p in pieces))])

    def denormalise(self, key: str, block: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs back to the image's intensity scale (``uncertainty`` is only scaled)."""
        if key == "uncertainty":
            return torch.mul(block, self.scale, out=out) if out is not None else block * self.scale
        if out is not None:
            return torch.addcmul(self.offset, block, self.scale, out=out)
        return torch.addcmul(self.offset, block, self.scale)


def empty_batch(n: int, channels: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uninitialised batch of windows; channels_last for 2D (the convolutions' fast layout)."""
    x = torch.empty((n, channels, *shape), dtype=torch.float32, device=device)
    return x.contiguous(memory_format=torch.channels_last) if len(shape) == 2 else x


def core_slices(box: Box, margin: int) -> tuple[slice, ...]:
    """Where a core box lies inside its window (all channels)."""
    return (slice(None), *(slice(margin, margin + hi - lo) for lo, hi in box))
