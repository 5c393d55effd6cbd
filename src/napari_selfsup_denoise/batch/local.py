"""Run work units in this process through the engine's prediction pipeline (read ahead, write behind)."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

from ..config import PredictConfig
from ..engine.arrays import canonical
from ..engine.model import Model
from .plan import region_px


def predict_units(
    model: Model,
    data: Any,
    axes: str,
    pcfg: PredictConfig,
    outs: list[Any],
    units: list,
    on_unit: Callable[[str, int], None],
    done: set[str] | frozenset[str] = frozenset(),
) -> None:
    """Predict ``units`` (all of the image's, in order) into ``outs`` (denoised[, uncertainty]), except ``done``.

    ``on_unit(key, px)`` is called in this thread after each unit's data is written.
    Units are batched as in a run without ``done``, so a resumed run writes
    bit for bit what a clean run writes.
    """
    from ..engine.predict import Tile, pick_tile, plan, predict_tiles

    tile = pick_tile(model, pcfg)
    shape = tuple(canonical(data, axes).shape)
    tiles, left = [], {}
    for key, region in units:
        samples, boxes, _ = plan(shape, axes, region, tile, model.ndim)
        parts = [Tile(s, t, box, key, key not in done) for (s, t), box in itertools.product(samples, boxes)]
        tiles += parts
        left[key] = len(parts)
    unc = outs[1] if len(outs) > 1 else None
    px = {key: region_px(region, axes) for key, region in units}
    with zarr_concurrency():
        for ev in predict_tiles(model, data, axes, pcfg, tiles, outs[0], unc):
            if not ev.done:  # prediction has started: no unit is written yet
                continue
            key = ev.info["key"]
            left[key] -= 1
            if not left[key]:
                on_unit(key, px[key])


@contextlib.contextmanager
def zarr_concurrency() -> Iterator[None]:
    """Within the block, one zarr call reads or writes up to twice as many chunks at once as there are cores
    (zarr's default, 10, where that is more): a frame's chunks are then decoded in one wave on a large machine.
    """
    try:
        import zarr
    except ImportError:
        yield
        return
    n = max(int(zarr.config.get("async.concurrency") or 0), 2 * (os.cpu_count() or 1))
    with zarr.config.set({"async.concurrency": n}):
        yield


def predict_region(model: Model, data: Any, axes: str, pcfg: PredictConfig, out: Any, unc: Any, region: tuple) -> Any:
    """The engine's prediction generator restricted to ``region``."""
    from ..engine.predict import predict

    return predict(model, data, pcfg, axes=axes, out=out, uncertainty_out=unc, region=region)
