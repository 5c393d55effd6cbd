"""Tile geometry: the windows of a tiling, the tiles worth trying, what they cost, and the plan of core boxes.

A tile's window is its core box rounded up to the pooling grid, plus the margin on
every side; the network computes every voxel of it (its *network voxels*). An
axis shorter than the tile counts at its own length. These counts choose a tile
under :attr:`.PredictConfig.max_pass_voxels` and do not depend on the machine.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..axes import CANONICAL
from ..config import ConfigError
from .windows import Box

SPLITS = 8  # candidate tiles cut each spatial axis into 1 to SPLITS equal parts


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Grid:
    """What a model imposes on tiles: ``ndim`` spatial axes, sizes on a ``multiple`` grid, ``margin`` per side."""

    ndim: int
    multiple: int
    margin: int

    def window(self, tile: int, shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """The largest window of a tiling of spatial ``shape`` by ``tile``."""
        m = self.multiple
        sides = [tile] * self.ndim if shape is None else [min(tile, _ceil(n, m) * m) for n in shape]
        return tuple(side + 2 * self.margin for side in sides)

    def voxels(self, tile: int, shape: tuple[int, ...]) -> int:
        """Network voxels of all windows of a tiling of spatial ``shape`` by ``tile``."""
        m, total = self.multiple, 1
        for n in shape:
            total *= sum(_ceil(min(tile, n - a), m) * m + 2 * self.margin for a in range(0, n, tile))
        return total

    def candidates(self, largest: int, shape: tuple[int, ...] | None = None) -> list[int]:
        """Tiles up to ``largest`` on the grid: its halvings, and those cutting an axis of ``shape`` evenly.

        An even cut (1 to :data:`SPLITS` equal parts) leaves no thin last tile, whose margins cost as much as a
        whole tile's. Largest first.
        """
        m = self.multiple
        found, t = {largest}, largest
        while t > m:
            t = max(m, t // 2 - t // 2 % m)
            found.add(t)
        for n, k in itertools.product(shape or (), range(1, SPLITS + 1)):
            t = _ceil(_ceil(n, k), m) * m
            if m <= t <= largest:
                found.add(t)
        return sorted(found, reverse=True)

    def check(self, tile: int, shape: tuple[int, ...] | None, bound: int | None) -> None:
        """Raise a ConfigError if a window of ``tile`` has more than ``bound`` network voxels."""
        voxels = math.prod(self.window(tile, shape))
        if bound is not None and voxels > bound:
            raise ConfigError(
                f"tile {tile} needs windows of {voxels:,} network voxels (the tile plus a margin of {self.margin} "
                f"on every side), more than max_pass_voxels={bound:,}: give a smaller tile, or leave the tile "
                "unset to have one chosen that fits"
            )

    def fitting(self, largest: int, shape: tuple[int, ...] | None, bound: int) -> int:
        """The tile up to ``largest`` whose windows have at most ``bound`` network voxels, at the least total cost.

        Among :meth:`candidates`, the fewest network voxels over ``shape`` (then the larger tile);
        the largest that fits when ``shape`` is unknown.

        Raises
        ------
        ConfigError
            If even the smallest tile's window is larger than ``bound``.
        """
        fits = [t for t in self.candidates(largest, shape) if math.prod(self.window(t, shape)) <= bound]
        if not fits:
            smallest = math.prod(self.window(self.multiple, shape))
            raise ConfigError(
                f"max_pass_voxels={bound:,} is below the smallest window this model predicts ({smallest:,} "
                f"network voxels: a {self.multiple}-pixel tile plus a margin of {self.margin} on every side); "
                "raise it or leave it unset"
            )
        if shape is None:
            return fits[0]
        return min(fits, key=lambda t: (self.voxels(t, shape), -t))


def plan(
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
