"""Input windows and output blocks of tiled prediction, built on the compute device.

The host only reads the in-image block a window needs (in the image's own
dtype) into a pinned buffer when the device is a GPU. On the device, the block
is mirrored into the window and normalised in one pass per piece (a window is
at most 3 pieces per axis: mirrored border, interior, mirrored border), written
straight into a batch of windows; outputs are cropped and de-normalised there too.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .chunk_cache import ChunkCache
from .data import DataError, Normalisation

Box = tuple[tuple[int, int], ...]
Runs = tuple[tuple[slice, slice, bool], ...]  # one axis of a window: (window slice, image slice, mirrored)

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
    """Image index of every window position, per spatial axis (core rounded up to ``multiple``, plus ``margin``).

    The arrays are read-only: tiles of a plan repeat a few geometries, each computed once.
    """
    return [_axis_index(lo, hi, size, margin, multiple) for (lo, hi), size in zip(box, sizes)]


@functools.lru_cache(maxsize=4096)
def _axis_index(lo: int, hi: int, size: int, margin: int, multiple: int) -> np.ndarray:
    hi_al = lo + -(-(hi - lo) // multiple) * multiple
    idx = reflect_index(np.arange(lo - margin, hi_al + margin), size)
    idx.flags.writeable = False
    return idx


@functools.lru_cache(maxsize=4096)
def _axis_bounds(lo: int, hi: int, size: int, margin: int, multiple: int) -> slice:
    """The image span that one axis of a window reads (mirrored positions included)."""
    idx = _axis_index(lo, hi, size, margin, multiple)
    return slice(int(idx.min()), int(idx.max()) + 1)


def split_box(box: Box, multiple: int) -> list[Box]:
    """Halve every axis of a core box on the pooling grid."""
    parts = []
    for lo, hi in box:
        mid = lo + max(multiple, ((hi - lo) // 2) // multiple * multiple)
        parts.append([(lo, hi)] if mid >= hi else [(lo, mid), (mid, hi)])
    return [tuple(p) for p in itertools.product(*parts)]


def window_shape(box: Box, margin: int, multiple: int) -> tuple[int, ...]:
    """Spatial shape of the window of a core box."""
    return tuple(-(-(hi - lo) // multiple) * multiple + 2 * margin for lo, hi in box)


@dataclass
class Raw:
    """The in-image block a tile's window needs: ``data`` ``(C, *spatial)`` starting at ``origin``."""

    data: torch.Tensor
    origin: tuple[int, ...]


def raw_index(shape: tuple[int, ...], s: int, t: int, box: Box, margin: int, multiple: int, ndim: int) -> tuple:
    """The canonical index of the block under a tile's window (mirrored positions included)."""
    bounds = [_axis_bounds(lo, hi, size, margin, multiple) for (lo, hi), size in zip(box, shape[6 - ndim :])]
    return (s, t, slice(None), bounds[0] if ndim == 3 else slice(0, 1), bounds[-2], bounds[-1])


def read_raw(
    canon: Any, s: int, t: int, box: Box, margin: int, multiple: int, ndim: int, pin: bool, serial: bool = False
) -> Raw:
    """Read the block under a tile's window (mirrored positions included), unconverted; checked for NaN
    (in this thread only where ``serial``: see :func:`serial_pieces`).

    Raises
    ------
    DataError
        If the block holds NaN or infinite values.
    """
    index = raw_index(canon.shape, s, t, box, margin, multiple, ndim)
    block = np.asarray(canon[index])
    if ndim == 2:
        block = block[:, 0]
    if block.dtype not in _NATIVE:
        block = block.astype(np.float32)
    elif not block.flags.writeable:  # torch shares only writable memory
        block = block.copy()
    tensor = torch.from_numpy(block)
    if tensor.is_floating_point() and not _finite(tensor, serial):
        raise DataError(f"the image holds NaN or infinite values (sample {s}, time {t}, near {box})")
    if pin:
        tensor = torch.empty(block.shape, dtype=tensor.dtype, pin_memory=True).copy_(tensor)
    return Raw(tensor, tuple(sl.start for sl in index[6 - ndim :]))


def _finite(block: torch.Tensor, serial: bool = False) -> bool:
    """True when ``block`` holds no NaN or infinity (a sum first: one pass without a temporary in the common case)."""
    if all(bool(torch.isfinite(block[cut].sum())) for cut in (_cuts(block.shape) if serial else [()])):
        return True
    return bool(np.isfinite(block.numpy()).all())


SERIAL_NUMEL = 1 << 15  # torch runs an elementwise op or reduction of fewer elements in the calling thread


@functools.lru_cache(maxsize=256)
def serial_pieces(shape: tuple[int, ...]) -> tuple[tuple[slice, ...], ...]:
    """Index pieces of an array of ``shape``, each of fewer than :data:`SERIAL_NUMEL` elements (leading axes cut first).

    A torch operation on the CPU over more elements starts an OpenMP team, whose idle threads then spin,
    taking the core that the pipeline's reader and writer (zarr's codecs) need; cut into these pieces, the same
    operation gives the same values (elementwise) in the calling thread.
    """
    if not shape:
        return ((),)
    inner = int(np.prod(shape[1:]))
    if inner < SERIAL_NUMEL:
        step = max(1, (SERIAL_NUMEL - 1) // max(inner, 1))
        return tuple((slice(a, a + step),) for a in range(0, shape[0], step))
    return tuple((slice(i, i + 1), *rest) for i in range(shape[0]) for rest in serial_pieces(shape[1:]))


def _cuts(shape: tuple[int, ...]) -> tuple[tuple[slice, ...], ...]:
    """:func:`serial_pieces`, or the whole array where torch runs one thread (no team to start, no cost to cut)."""
    return serial_pieces(tuple(shape)) if torch.get_num_threads() > 1 else ((),)


def _runs_from(idx: np.ndarray, origin: int) -> Runs:
    """:func:`_runs` of ``idx - origin``, computed once per distinct index (tiles repeat a few geometries)."""
    return _runs_of(np.ascontiguousarray(idx, dtype=np.int64).tobytes(), int(origin))


@functools.lru_cache(maxsize=4096)
def _runs_of(idx: bytes, origin: int) -> Runs:
    return tuple(_runs(np.frombuffer(idx, dtype=np.int64) - origin))


def _runs(idx: np.ndarray) -> list[tuple[slice, slice, bool]]:
    """Split window positions into runs of ascending or descending image indices: ``(dst, src, flipped)``.

    Mirrored indices step by +-1, or by 0 along an axis of size 1 (a one-pixel
    source that broadcasts over its run).
    """
    step = np.diff(idx)
    # a new run starts where the step changes (a lone position joins the run after it)
    cuts = np.flatnonzero(step[1:] != step[:-1]) + 2 if len(step) > 1 else np.array([], int)
    bounds = [0, *(int(c) for c in cuts), len(idx)]
    runs = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        lo, hi = int(idx[a:b].min()), int(idx[a:b].max())
        flipped = b - a > 1 and idx[a + 1] < idx[a]
        runs.append((slice(a, b), slice(lo, hi + 1), bool(flipped)))
    return runs


class Normaliser:
    """Per-channel normalisation ``(x - offset) / scale`` and its inverse, one fused pass per channel.

    Each channel is ``b + a * x`` with a 0-dim CPU tensor ``b`` and a Python
    float ``a`` (torch's scalar fast path on any device; several times faster
    than broadcasting per-channel tensors on the CPU). With ``serial``, CPU
    passes run in the calling thread, cut into :func:`serial_pieces` (same values).
    """

    def __init__(self, norm: Normalisation, serial: bool = False) -> None:
        scale = np.asarray(norm.scale, np.float64)
        offset = np.asarray(norm.offset, np.float64)
        zero_d = lambda v: [torch.tensor(float(x), dtype=torch.float32) for x in v]  # noqa: E731
        self.inv, self.bias = [float(x) for x in 1.0 / scale], zero_d(-offset / scale)
        self.scale, self.offset = [float(x) for x in scale], zero_d(offset)
        self.serial = serial

    def window_into(self, dst: torch.Tensor, raw: torch.Tensor, idx: list[np.ndarray], origin: tuple[int, ...]) -> None:
        """Mirror ``raw`` into ``dst`` ``(C, *window)`` following ``idx`` and normalise it, piece by piece."""
        per_axis = [_runs_from(i, o) for i, o in zip(idx, origin)]
        if self.serial and dst.device.type == "cpu" and raw.device.type == "cpu":
            self._window_serial(dst.numpy(), raw.numpy(), per_axis)
            return
        for pieces in itertools.product(*per_axis):
            src = raw[(slice(None), *(p[1] for p in pieces))]
            flips = [d + 1 for d, p in enumerate(pieces) if p[2]]
            if flips:  # unsigned 16-bit tensors cannot be flipped: border pieces are converted first (small)
                src = torch.flip(src.float() if src.dtype in LIMITED else src, dims=flips)
            part = dst[(slice(None), *(p[0] for p in pieces))]
            src = src.expand(part.shape)  # a one-pixel axis fills its whole run
            if src.dtype != part.dtype:  # cast in place first: torch's mixed-dtype add is several times slower
                part.copy_(src)
                src = part
            for c in range(dst.shape[0]):
                torch.add(self.bias[c], src[c], alpha=self.inv[c], out=part[c])

    def _window_serial(self, dst: np.ndarray, raw: np.ndarray, per_axis: list[Runs]) -> None:
        """:meth:`window_into` in this thread: numpy casts and mirrors (reversed views), torch normalises in pieces."""
        for pieces in itertools.product(*per_axis):
            src = raw[(slice(None), *(p[1] for p in pieces))]
            src = src[(slice(None), *(slice(None, None, -1 if p[2] else 1) for p in pieces))]
            part = dst[(slice(None), *(p[0] for p in pieces))]
            if src.dtype != part.dtype or src.shape != part.shape or any(p[2] for p in pieces):
                np.copyto(part, src, casting="unsafe")  # cast, mirror and broadcast in one pass
                src = part
            s_t, p_t = torch.from_numpy(src), torch.from_numpy(part)
            for c, cut in itertools.product(range(dst.shape[0]), _cuts(part.shape[1:])):
                torch.add(self.bias[c], s_t[c][cut], alpha=self.inv[c], out=p_t[c][cut])

    def denormalise_into(self, key: str, block: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``block`` ``(C, *core)`` in the image's intensity scale (``uncertainty`` only scaled), written to ``out``."""
        serial = self.serial and block.device.type == "cpu"
        for c in range(block.shape[0]):
            for cut in _cuts(tuple(block.shape[1:])) if serial else [()]:
                if key == "uncertainty":
                    torch.mul(block[c][cut], self.scale[c], out=out[c][cut])
                else:
                    torch.add(self.offset[c], block[c][cut], alpha=self.scale[c], out=out[c][cut])
        return out


def empty_batch(n: int, channels: int, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Uninitialised batch of windows; channels_last for 2D (the convolutions' fast layout)."""
    layout = torch.channels_last if len(shape) == 2 else torch.contiguous_format  # made so: nothing copied
    return torch.empty((n, channels, *shape), dtype=torch.float32, device=device, memory_format=layout)


def core_slices(box: Box, margin: int) -> tuple[slice, ...]:
    """Where a core box lies inside its window (all channels)."""
    return (slice(None), *(slice(margin, margin + hi - lo) for lo, hi in box))


MIN_PREDICT_PIXELS = 9  # a 3 x 3 neighbourhood; thin lines (1 x 40) still have neighbours, a 1 x 1 image none


def check_size(shape: tuple[int, ...]) -> None:
    """Refuse planes (canonical ``shape``) with too few pixels to predict a pixel from its neighbours (1 x 1)."""
    y_size, x_size = shape[4:]
    if y_size * x_size < MIN_PREDICT_PIXELS:
        raise DataError(
            f"the image's Y, X extent ({y_size} x {x_size}) is too small to denoise: each pixel is predicted "
            f"from its neighbours, which needs at least {MIN_PREDICT_PIXELS} pixels per plane"
        )


def cached(image: Any) -> Any:
    """``image`` behind a chunk cache when it is a chunked store (zarr-like), so halos are read once."""
    chunks = getattr(image, "chunks", None)
    if isinstance(image, np.ndarray | ChunkCache) or not isinstance(chunks, tuple):
        return image
    if not all(isinstance(c, int) for c in chunks):  # dask: tuples of block sizes
        return image
    return ChunkCache(image)
