"""The tile the widgets ask prediction for: forward passes short enough that Stop and quitting are prompt.

The engine's automatic tile is as large as memory allows. In 3D on a CPU one
window of it is many seconds of compute, and a forward pass runs to its end
(issue 10, item 13: quitting napari waited 8.4 s for one pass over the 3D
sample). When the largest pass costs more than :data:`PASS_STEPS` training steps
(the bound a live preview keeps to, :mod:`..engine.preview_cost`), the widgets ask
for the tile whose largest pass is the smallest among the tilings that put at
most :data:`SLOWER` times the network voxels of the cheapest one through the
network. The output does not depend on the tile (:mod:`..engine.predict`).
"""

from __future__ import annotations

import math
from typing import Any

from ..engine.preview_cost import FORWARD_SHARE, PREVIEW_STEPS, step_voxels

PASS_STEPS = PREVIEW_STEPS  # one forward pass should cost at most this many training steps
SLOWER = 1.1  # a denoise may put this much more through the network than the cheapest tiling, for shorter passes
SPLITS = 8  # candidate tiles split each spatial axis into 1 to SPLITS equal parts


def pass_voxels(model: Any, shape: tuple[int, ...], axes: str, tile: int, device: Any, tta: bool) -> list[int]:
    """Network voxels (windows with their margins, times the batch) of each forward pass of a prediction.

    Parameters
    ----------
    model : Model
        The model that predicts.
    shape : tuple of int
        The image's canonical shape (``STCZYX``).
    axes : str
        The image's axes.
    tile : int
        The tile edge.
    device : torch.device
        Where prediction runs (it sets how many windows share a pass).
    tta : bool
        Whether test-time augmentation runs (it halves what fits in memory).
    """
    from ..engine.pipeline import Tile, batches
    from ..engine.predict import plan, tiles_per_forward
    from ..engine.windows import window_shape

    samples, boxes, _ = plan(shape, axes, None, tile, model.ndim)
    tiles = [Tile(s, t, box) for s, t in samples for box in boxes]  # predict's order: samples, then boxes
    fits: dict[tuple[int, ...], int] = {}

    def per_forward(window: tuple[int, ...]) -> int:
        if window not in fits:
            fits[window] = tiles_per_forward(model, device, tta, window)
        return fits[window]

    groups = batches(tiles, per_forward, model.margin, model.multiple)
    return [len(g) * math.prod(window_shape(g[0].box, model.margin, model.multiple)) for g in groups]


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def candidate_tiles(spatial: tuple[int, ...], multiple: int, largest: int) -> list[int]:
    """Tiles that cut each spatial extent into 1 to :data:`SPLITS` equal parts on the pooling grid, and ``largest``."""
    found = {largest}
    for n in spatial:
        for k in range(1, SPLITS + 1):
            tile = _ceil(_ceil(n, k), multiple) * multiple
            if multiple <= tile <= largest:
                found.add(tile)
    return sorted(found, reverse=True)


def short_pass_tile(model: Any, image: Any, axes: str | None, pcfg: Any) -> int | None:
    """The tile the widgets ask for: ``pcfg.tile`` when set; None to keep the engine's automatic tile.

    Parameters
    ----------
    model : Model
        The model that predicts.
    image : array-like
        The image to denoise.
    axes : str or None
        Its axes (resolved as prediction resolves them).
    pcfg : PredictConfig
        The prediction settings.
    """
    from ..engine.arrays import canonical
    from ..engine.device import pick_device
    from ..engine.predict import pick_tile

    if pcfg.tile is not None:
        return int(pcfg.tile)
    device = pick_device(pcfg.device)
    if device.type == "cuda":  # a pass of the largest window takes a fraction of a second there
        return None
    axes = model.resolve_axes(tuple(image.shape), axes)
    shape = tuple(int(n) for n in canonical(image, axes).shape)
    auto = pick_tile(model, pcfg, shape[6 - model.ndim :])  # as predict picks it
    limit = PASS_STEPS * step_voxels(model.config, model.ndim) / FORWARD_SHARE
    tiles = candidate_tiles(shape[6 - model.ndim :], model.multiple, auto)
    costs = {t: pass_voxels(model, shape, axes, t, device, pcfg.tta) for t in tiles}
    if max(costs[auto]) <= limit:
        return None
    cheapest = min(sum(c) for c in costs.values())
    near = {t: c for t, c in costs.items() if sum(c) <= SLOWER * cheapest}
    short = [t for t, c in near.items() if max(c) <= limit]
    best = min(short, key=lambda t: sum(near[t])) if short else min(near, key=lambda t: (max(near[t]), sum(near[t])))
    return None if best == auto else best
