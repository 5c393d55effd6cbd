"""The prediction settings the widgets ask for: forward passes short enough that Stop and quitting are prompt.

The engine's automatic tile is as large as memory allows. In 3D on a CPU one
window of it is many seconds of compute, and a forward pass runs to its end
(issue 10, item 13: quitting napari waited 8.4 s for one pass over the 3D
sample). When the largest pass costs more than :data:`PASS_STEPS` training steps
(the bound a live preview keeps to, :mod:`..engine.preview_cost`), the widgets
bound the network voxels of a pass (:attr:`.PredictConfig.max_pass_voxels`):
with the bound whose largest pass is the shortest among those that put at most
:data:`SLOWER` times the network voxels of the cheapest one through the network.
The engine plans the tiles and passes under the bound and counts them
(:func:`..engine.predict.pass_voxels`); the output does not depend on them.
Candidate tiles are tried largest first, and the search ends at the first one
above that cost: the smaller ones only add margins (on the 3D sample the last
of 15 candidates alone planned 147,456 passes: 0.57 s of CPU in the worker, whose
full garbage collections over those objects held the interpreter lock 18-49 ms
each while napari waited).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ..engine.preview_cost import FORWARD_SHARE, PREVIEW_STEPS, step_voxels

PASS_STEPS = PREVIEW_STEPS  # one forward pass should cost at most this many training steps
SLOWER = 1.1  # a denoise may put this much more through the network than the cheapest plan, for shorter passes


def short_passes(model: Any, image: Any, axes: str | None, pcfg: Any) -> Any:
    """``pcfg`` with the pass bound the widgets ask for; ``pcfg`` itself when it sets a tile or a bound, or fits.

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
    from ..engine.predict import pass_voxels, pick_tile
    from ..engine.tiling import Grid

    if pcfg.tile is not None or pcfg.max_pass_voxels is not None:
        return pcfg
    if pick_device(pcfg.device).type == "cuda":  # a pass of the largest window takes a fraction of a second there
        return pcfg
    axes = model.resolve_axes(tuple(image.shape), axes)
    shape = tuple(int(n) for n in canonical(image, axes).shape)
    limit = PASS_STEPS * step_voxels(model.config, model.ndim) / FORWARD_SHARE
    costs: dict[int | None, list[int]] = {None: pass_voxels(model, shape, axes, pcfg)}
    if max(costs[None]) <= limit:
        return pcfg
    spatial, grid = shape[6 - model.ndim :], Grid(model.ndim, model.multiple, model.margin)
    cheapest = sum(costs[None])
    for tile in grid.candidates(pick_tile(model, pcfg, spatial), spatial):  # each tile's window as a bound
        bound = math.prod(grid.window(tile, spatial))
        costs[bound] = pass_voxels(model, shape, axes, dataclasses.replace(pcfg, max_pass_voxels=bound))
        cheapest = min(cheapest, sum(costs[bound]))
        if sum(costs[bound]) > SLOWER * cheapest:  # smaller tiles put still more margin through: none is near
            break
    near = {b: c for b, c in costs.items() if sum(c) <= SLOWER * cheapest}
    short = [b for b, c in near.items() if max(c) <= limit]
    best = min(short, key=lambda b: sum(near[b])) if short else min(near, key=lambda b: (max(near[b]), sum(near[b])))
    return dataclasses.replace(pcfg, max_pass_voxels=best)
