"""Tiled N-D prediction: exact tiles, automatic tile size, out-of-memory back-off.

Every tile is predicted on a window that adds the network's margin (which
covers its whole receptive field) on each side, and windows start on the
network's pooling grid. Each output pixel therefore sees exactly the context it
would see in a whole-image pass, so tiles meet without seams and the result
does not depend on the tile size. Beyond the image the data is mirrored.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Generator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..axes import CANONICAL
from ..config import PredictConfig
from .arrays import canonical, write_block
from .data import DataError, Normalisation
from .device import autocast, configure_threads, pick_device, resolve_precision
from .events import PredictProgress
from .methods import Method

Box = tuple[tuple[int, int], ...]


class ModelLike(Protocol):
    """What prediction needs from a trained model; :class:`.model.Model` is one (no import, no cycle)."""

    net: nn.Module
    method: Method
    ndim: int
    norm: Normalisation

    @property
    def margin(self) -> int:
        """Context per side that covers the receptive field."""

    @property
    def multiple(self) -> int:
        """Window sizes must be multiples of this."""

    def resolve_axes(self, image: Any, axes: str | None) -> str:
        """Axes for ``image``, checked against the model."""

    def check_channels(self, channels: int) -> None:
        """Raise if the image has another number of channels."""


def reflect_index(idx: np.ndarray, size: int) -> np.ndarray:
    """Mirror indices into ``[0, size)`` (edge pixel not repeated), for any offset."""
    if size == 1:
        return np.zeros_like(idx)
    period = 2 * (size - 1)
    i = np.mod(idx, period)
    return np.where(i >= size, period - i, i)


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device`` (CUDA: free device memory; else available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3


def auto_tile(model: ModelLike, device: torch.device, tta: bool) -> int:
    """Largest tile edge whose window fits a quarter of free memory (capped for cache reuse)."""
    per_px = model.method.bytes_per_pixel(model.net) * (2 if tta else 1)
    budget = available_memory(device) // 4
    cap = (2048 if device.type == "cuda" else 1024) if model.ndim == 2 else (256 if device.type == "cuda" else 128)
    m, margin = model.multiple, model.margin
    tile = cap
    while tile > m and (tile + 2 * margin) ** model.ndim * per_px > budget:
        tile //= 2
    return max(m, tile - tile % m)


def _read_window(canon: Any, s: int, t: int, box: Box, margin: int, multiple: int, ndim: int) -> np.ndarray:
    """Input window ``(C, *spatial)`` for a core box, mirrored beyond the image."""
    sizes = canon.shape[6 - ndim :]
    idx = []
    for (lo, hi), size in zip(box, sizes):
        hi_al = lo + -(-(hi - lo) // multiple) * multiple
        idx.append(reflect_index(np.arange(lo - margin, hi_al + margin), size))
    bounds = [slice(int(i.min()), int(i.max()) + 1) for i in idx]
    zsl = bounds[0] if ndim == 3 else slice(0, 1)
    block = np.asarray(canon[s, t, :, zsl, bounds[-2], bounds[-1]], dtype=np.float32)
    if ndim == 2:
        block = block[:, 0]
    for ax, (i, b) in enumerate(zip(idx, bounds)):
        block = np.take(block, i - b.start, axis=ax + 1)
    return block


def _dihedral(x: torch.Tensor, k: int, flip: bool, inverse: bool = False) -> torch.Tensor:
    if not inverse:
        x = torch.rot90(x, k, dims=(-2, -1)) if k else x
        return torch.flip(x, dims=(-1,)) if flip else x
    x = torch.flip(x, dims=(-1,)) if flip else x
    return torch.rot90(x, -k, dims=(-2, -1)) if k else x


def _forward(model: ModelLike, x: torch.Tensor, pcfg: PredictConfig, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    transforms = [(k, f) for f in (False, True) for k in range(4)] if pcfg.tta else [(0, False)]
    acc: dict[str, torch.Tensor] = {}
    with torch.inference_mode(), autocast(x.device, dtype):
        for k, f in transforms:
            res = model.method.infer(model.net, _dihedral(x, k, f), pcfg)
            for key, v in res.items():
                v = _dihedral(v.float(), k, f, inverse=True)
                acc[key] = acc[key] + v if key in acc else v
    return {k: v / len(transforms) for k, v in acc.items()}


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate" in msg)


def _split(box: Box, multiple: int) -> list[Box]:
    """Halve every axis of a core box on the pooling grid."""
    parts = []
    for lo, hi in box:
        mid = lo + max(multiple, ((hi - lo) // 2) // multiple * multiple)
        parts.append([(lo, hi)] if mid >= hi else [(lo, mid), (mid, hi)])
    return [tuple(p) for p in itertools.product(*parts)]


class _Tiler:
    """Predict core boxes of one array, splitting boxes that run out of memory."""

    def __init__(self, model: ModelLike, canon: Any, pcfg: PredictConfig, device: torch.device) -> None:
        self.model, self.canon, self.pcfg, self.device = model, canon, pcfg, device
        self.dtype = resolve_precision(pcfg.precision, device)
        self.splits = 0

    def run(self, s: int, t: int, box: Box) -> list[tuple[Box, dict[str, np.ndarray]]]:
        m = self.model
        try:
            win = _read_window(self.canon, s, t, box, m.margin, m.multiple, m.ndim)
            if not np.isfinite(win).all():
                raise DataError(f"the image holds NaN or infinite values (sample {s}, time {t}, near {box})")
            x = torch.from_numpy(m.norm.forward(win, channel_axis=0)).unsqueeze(0).to(self.device)
            res = _forward(m, x, self.pcfg, self.dtype)
        except (RuntimeError, MemoryError) as exc:
            if not _is_oom(exc) or all(hi - lo <= m.multiple for lo, hi in box):
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            self.splits += 1
            return [r for sub in _split(box, m.multiple) for r in self.run(s, t, sub)]
        crop = (slice(None), *(slice(m.margin, m.margin + hi - lo) for lo, hi in box))
        out = {k: v[0].cpu().numpy()[crop] for k, v in res.items()}
        out["denoised"] = m.norm.inverse(out["denoised"], channel_axis=0)
        if "uncertainty" in out:
            out["uncertainty"] = out["uncertainty"] * np.asarray(m.norm.scale, np.float32).reshape(-1, *[1] * m.ndim)
        return [(box, out)]


def predict(
    model: ModelLike,
    image: Any,
    config: PredictConfig | None = None,
    *,
    axes: str | None = None,
    stop: threading.Event | None = None,
    out: Any = None,
    uncertainty_out: Any = None,
    region: tuple[slice, ...] | None = None,
) -> Generator[PredictProgress, None, Any]:
    """Denoise ``image`` tile by tile; yield :class:`PredictProgress`, return the output.

    Parameters
    ----------
    model : Model
        A trained model.
    image : array-like
        numpy, zarr or dask array with the model's channels and spatial dims.
    config : PredictConfig, optional
        Tile size, test-time augmentation, device, precision.
    axes : str, optional
        Axes of ``image``; defaults to the model's training axes when they fit.
    stop : threading.Event, optional
        Set it to end after the current tile (the output is then partial).
    out, uncertainty_out : array-like, optional
        Arrays shaped like ``image`` (numpy or zarr) to write into; float32
        numpy arrays are allocated when omitted.
    region : tuple of slice, optional
        Predict and write only this box (one slice per axis of ``image``, all
        channels). Context around it is still read from ``image``, so a region
        equals the same region of a whole-image pass when its spatial starts are
        multiples of ``model.multiple``. Lets batch jobs run chunks independently.

    Returns
    -------
    array-like
        ``out``, float32 in the image's intensity scale.
    """
    pcfg = config or PredictConfig()
    axes = model.resolve_axes(image, axes)
    canon = canonical(image, axes)
    model.check_channels(canon.shape[2])
    device = pick_device(pcfg.device)
    configure_threads()
    model.net.to(device).eval()
    if out is None:
        out = np.zeros(image.shape, dtype=np.float32)
    if pcfg.uncertainty and uncertainty_out is None:
        uncertainty_out = np.zeros(image.shape, dtype=np.float32)
    tile = pcfg.tile or auto_tile(model, device, pcfg.tta)
    tile = max(model.multiple, tile - tile % model.multiple)
    samples, boxes, px_total = _plan(canon.shape, axes, region, tile, model.ndim)
    total = len(samples) * len(boxes)
    tiler, t0, done, px = _Tiler(model, canon, pcfg, device), time.perf_counter(), 0, 0
    for (s, t), box in itertools.product(samples, boxes):
        if stop is not None and stop.is_set():
            break
        for sub, res in tiler.run(s, t, box):
            _write(out, axes, s, t, sub, res["denoised"], model.ndim)
            if uncertainty_out is not None and "uncertainty" in res:
                _write(uncertainty_out, axes, s, t, sub, res["uncertainty"], model.ndim)
        done, px = done + 1, px + int(np.prod([hi - lo for lo, hi in box]))
        el = time.perf_counter() - t0
        yield PredictProgress(
            done,
            total,
            px,
            px_total,
            el,
            el / px * (px_total - px),
            {"tile": tile, "splits": tiler.splits},
        )
    return (out, uncertainty_out) if pcfg.uncertainty else out


def _plan(
    shape: tuple[int, ...], axes: str, region: tuple[slice, ...] | None, tile: int, ndim: int
) -> tuple[list[tuple[int, int]], list[Box], int]:
    """(S, T) pairs, core boxes and pixel count covering ``region`` (canonical ``shape``)."""
    ranges = [(0, n) for n in shape]
    if region is not None:
        if len(region) != len(axes):
            raise ValueError(f"region has {len(region)} slices but the image axes are {axes!r}")
        for a, sl in zip(axes, region):
            i = CANONICAL.index(a)
            ranges[i] = sl.indices(shape[i])[:2]
        if ranges[2] != (0, shape[2]):
            raise ValueError("region must span all channels")
    spatial = ranges[6 - ndim :]
    grids = [[(a, min(a + tile, hi)) for a in range(lo, hi, tile)] for lo, hi in spatial]
    samples = list(itertools.product(range(*ranges[0]), range(*ranges[1])))
    return samples, list(itertools.product(*grids)), len(samples) * int(np.prod([hi - lo for lo, hi in spatial]))


def _write(out: Any, axes: str, s: int, t: int, box: Box, block: np.ndarray, ndim: int) -> None:
    spatial = [slice(lo, hi) for lo, hi in box]
    if ndim == 2:
        spatial = [slice(0, 1), *spatial]
        block = block[:, None]
    index = (slice(s, s + 1), slice(t, t + 1), slice(None), *spatial)
    write_block(out, axes, index, block[None, None])
