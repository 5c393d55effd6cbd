"""Tiled N-D prediction: exact tiles, automatic tile size, out-of-memory back-off.

Every tile is predicted on a window that adds the network's margin (which
covers its whole receptive field) on each side, and windows start on the
network's pooling grid. Each output pixel therefore sees exactly the context it
would see in a whole-image pass, so tiles meet without seams and the result
does not depend on the tile size. Beyond the image the data is mirrored.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Generator
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..config import PredictConfig
from .arrays import canonical
from .data import Normalisation
from .device import available_memory, configure_threads, pick_device
from .events import PredictProgress
from .methods import Method
from .nets.blindspot import BlindSpotNet
from .nets.core import core_bytes
from .pipeline import Pipeline, Sink, Tile, progress
from .tiling import Grid, plan
from .windows import cached, check_size, reflect_index, window_shape

__all__ = [
    "ModelLike",
    "Tile",
    "auto_tile",
    "pass_voxels",
    "pick_tile",
    "plan",
    "predict",
    "predict_tiles",
    "reflect_index",
    "window_bytes",
]

MAX_BATCH = {"cuda": 32, "cpu": 8}  # windows per forward pass at most (several small tiles or frames)
HOST_BATCH_EDGE = {2: 512, 3: 64}  # off CUDA, a forward pass holds at most one window of this tile edge
# CUDA: a plan runs in MIN_PASSES passes at least (copies overlap them); 2D nets of a margin up to 64 get 1024^2
MIN_PASSES, CUDA_SMALL_TILE = 4, (64, 1024)  # tiles, not 2048^2 (H200: N2V 205 MP/s against 163-183; docs/gpu.md)


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

    def resolve_axes(self, shape: tuple[int, ...], axes: str | None) -> str:
        """Axes for an image of ``shape``, checked against the model."""

    def check_channels(self, channels: int) -> None:
        """Raise if the image has another number of channels."""


def window_bytes(model: ModelLike, window: tuple[int, ...], tta: bool, batch: int = 1) -> int:
    """Peak bytes of one forward pass over ``batch`` windows of spatial shape ``window``.

    The blind-spot network runs each direction on its own context (:func:`.nets.core.core_bytes` counts
    what that holds); other networks count :meth:`.Method.bytes_per_pixel` per window voxel (doubled for TTA).
    """
    if isinstance(model.net, BlindSpotNet):
        return core_bytes(model.net, window, model.margin, batch, tta)
    return batch * math.prod(window) * model.method.bytes_per_pixel(model.net) * (2 if tta else 1)


def auto_tile(model: ModelLike, device: torch.device, tta: bool, shape: tuple[int, ...] | None = None) -> int:
    """Largest tile edge whose window's forward pass fits a quarter of free memory (capped for cache reuse).

    With the image's spatial ``shape``, an axis shorter than the tile counts at its own length
    (a thin 3D stack gets larger tiles in Y and X, so fewer margins are computed). Memory is
    counted by :func:`window_bytes`.
    """
    budget = available_memory(device) // 4
    cap = (2048 if device.type == "cuda" else 1024) if model.ndim == 2 else (256 if device.type == "cuda" else 128)
    if device.type == "cuda" and model.ndim == 2 and model.margin <= CUDA_SMALL_TILE[0]:
        cap = CUDA_SMALL_TILE[1]  # several passes overlap their copies (MIN_PASSES)
    m, grid = model.multiple, _grid(model)
    tile = cap
    while tile > m and window_bytes(model, grid.window(tile, shape), tta) > budget:
        tile //= 2
    return max(m, tile - tile % m)


def tiles_per_forward(
    model: ModelLike, device: torch.device, tta: bool, window: tuple[int, ...], max_voxels: int | None = None
) -> int:
    """How many windows of shape ``window`` one forward pass takes: as many as fit a quarter of free memory, capped.

    Off CUDA a pass holds no more pixels than one window around a :data:`HOST_BATCH_EDGE` tile (batching saves only
    per-call overhead there). ``max_voxels`` (:attr:`.PredictConfig.max_pass_voxels`) bounds the pass's voxels.
    """
    px = max(1, math.prod(window))
    fit = available_memory(device) // 4 // max(1, window_bytes(model, window, tta))
    if device.type != "cuda":
        fit = min(fit, (HOST_BATCH_EDGE[model.ndim] + 2 * model.margin) ** model.ndim // px)
    if max_voxels is not None:
        fit = min(fit, max_voxels // px)
    return int(max(1, min(MAX_BATCH.get(device.type, 1), fit)))


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
    """Denoise ``image`` tile by tile; yield :class:`PredictProgress` (``done=0`` as it starts, then per tile).

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
        Set it to end after the current forward pass (the output is then partial: zero where not predicted).
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
    axes = model.resolve_axes(tuple(image.shape), axes)
    own = {"denoised": out is None, "uncertainty": pcfg.uncertainty and uncertainty_out is None}
    alloc = np.empty if region is None else np.zeros  # a whole-image pass writes every pixel (or zeroes them below)
    if out is None:
        out = alloc(image.shape, dtype=np.float32)
    if pcfg.uncertainty and uncertainty_out is None:
        uncertainty_out = alloc(image.shape, dtype=np.float32)
    shape = tuple(canonical(image, axes).shape)
    tile = pick_tile(model, pcfg, shape[6 - model.ndim :])
    samples, boxes, _ = plan(shape, axes, region, tile, model.ndim)
    tiles = [Tile(s, t, box) for (s, t), box in itertools.product(samples, boxes)]
    written: list[Tile] = []
    yield from predict_tiles(model, image, axes, pcfg, tiles, out, uncertainty_out, stop, written)
    if region is None and len(written) < len(tiles):  # stopped early: what was not predicted is zero
        mine = {k: a for k, a in (("denoised", out), ("uncertainty", uncertainty_out)) if own[k]}
        done = set(written)
        zero_unwritten(mine, axes, model.ndim, [t for t in tiles if t not in done])
    return (out, uncertainty_out) if pcfg.uncertainty else out


def _grid(model: ModelLike) -> Grid:
    return Grid(model.ndim, model.multiple, model.margin)


def pick_tile(model: ModelLike, pcfg: PredictConfig, shape: tuple[int, ...] | None = None) -> int:
    """The tile edge for ``pcfg`` (automatic when unset, for an image of spatial ``shape``), on the pooling grid.

    Under :attr:`.PredictConfig.max_pass_voxels` the automatic tile is :meth:`.Grid.fitting`'s: the
    cheapest tiling whose windows fit the bound.

    Raises
    ------
    ConfigError
        If the bound is below the window of an explicit tile, or of the smallest tile.
    """
    m, grid, bound = model.multiple, _grid(model), pcfg.max_pass_voxels
    if pcfg.tile:
        tile = max(m, pcfg.tile - pcfg.tile % m)
        grid.check(tile, shape, bound)
        return tile
    tile = auto_tile(model, pick_device(pcfg.device), pcfg.tta, shape)
    if bound is None or math.prod(grid.window(tile, shape)) <= bound:
        return tile
    return grid.fitting(tile, shape, bound)


def pass_voxels(model: ModelLike, shape: tuple[int, ...], axes: str, pcfg: PredictConfig) -> list[int]:
    """Network voxels of each forward pass of ``predict(model, image, pcfg)`` for an image of canonical ``shape``.

    Parameters
    ----------
    model : Model
        The model that predicts.
    shape : tuple of int
        The image's canonical shape (``STCZYX``).
    axes : str
        The image's axes.
    pcfg : PredictConfig
        The prediction settings (the tile, the bound, the device, TTA).
    """
    tile = pick_tile(model, pcfg, shape[6 - model.ndim :])
    samples, boxes, _ = plan(shape, axes, None, tile, model.ndim)
    tiles = [Tile(s, t, box) for (s, t), box in itertools.product(samples, boxes)]
    return _pass_sizes(model, _groups(model, pick_device(pcfg.device), pcfg, tiles))


def _groups(model: ModelLike, device: torch.device, pcfg: PredictConfig, tiles: list[Tile]) -> list[list[Tile]]:
    """Runs of same-shaped windows, as many per pass as fit and the bound allows (CUDA: :data:`MIN_PASSES` at least)."""
    fits: dict[tuple[int, ...], int] = {}
    spread = -(-len(tiles) // MIN_PASSES) if device.type == "cuda" else len(tiles)

    def per_forward(window: tuple[int, ...]) -> int:
        if window not in fits:
            fits[window] = min(spread, tiles_per_forward(model, device, pcfg.tta, window, pcfg.max_pass_voxels))
        return fits[window]

    return batches(tiles, per_forward, model.margin, model.multiple)


def batches(tiles: list[Tile], per_forward: Any, margin: int, multiple: int) -> list[list[Tile]]:
    """Runs of consecutive tiles with the same window shape, ``per_forward(shape)`` at most each."""
    groups: list[list[Tile]] = []
    for shape, run in itertools.groupby(tiles, key=lambda t: window_shape(t.box, margin, multiple)):
        items, n = list(run), max(1, int(per_forward(shape)))
        groups += [items[i : i + n] for i in range(0, len(items), n)]
    return groups


def predict_tiles(
    model: ModelLike,
    image: Any,
    axes: str,
    pcfg: PredictConfig,
    tiles: list[Tile],
    out: Any,
    uncertainty_out: Any = None,
    stop: threading.Event | None = None,
    written: list[Tile] | None = None,
) -> Generator[PredictProgress, None, None]:
    """Predict ``tiles`` of ``image`` into ``out`` (and ``uncertainty_out``) through the pipeline.

    Tiles with ``write=False`` are computed only when they share a forward pass
    with a tile to write (so batches do not depend on what was done before) and
    are not written. Yields a :class:`PredictProgress` with ``done=0`` as prediction starts, then one per
    written tile, whose ``info["key"]`` is the tile's key; each written tile is appended to ``written`` when given.
    """
    canon = canonical(cached(image), axes)
    model.check_channels(canon.shape[2])
    check_size(canon.shape)
    device = pick_device(pcfg.device)
    configure_threads()
    model.net.to(device).eval()
    sink = Sink(
        {"denoised": out, "uncertainty": uncertainty_out if pcfg.uncertainty else None}, axes, model.ndim, device
    )
    pipe = Pipeline(model, canon, pcfg, device, sink)
    groups = _groups(model, device, pcfg, tiles)
    todo = [t for t in tiles if t.write]
    tile = max((hi - lo for t in tiles for lo, hi in t.box), default=0)
    sizes = _pass_sizes(model, groups)
    info = {"tile": tile, "batch": max((len(g) for g in groups), default=0), "pass_voxels": max(sizes, default=0)}
    yield from progress(pipe, pipe.run(groups, stop), len(todo), sum(t.pixels for t in todo), info, written)


def _pass_sizes(model: ModelLike, groups: list[list[Tile]]) -> list[int]:
    """Network voxels of each forward pass of ``groups``."""
    return [len(g) * math.prod(window_shape(g[0].box, model.margin, model.multiple)) for g in groups]


def zero_unwritten(arrays: dict[str, Any], axes: str, ndim: int, tiles: list[Tile]) -> None:
    """Zero the core boxes of ``tiles`` in ``arrays`` (outputs allocated uninitialised, then left by a stop)."""
    if not arrays:
        return
    sink = Sink(arrays, axes, ndim, torch.device("cpu"))
    channels = canonical(next(iter(arrays.values())), axes).shape[2]
    for t in tiles:
        zeros = np.zeros((channels, *(hi - lo for lo, hi in t.box)), dtype=np.float32)
        for key in arrays:
            sink.write(key, t.s, t.t, t.box, zeros)
