"""Canonical-order (``S, T, C, Z, Y, X``) access to any array-like, lazily.

numpy arrays get a zero-copy transposed view; other arrays (zarr, dask,
tifffile memmaps behind a wrapper) are read block by block on indexing, so
a stack larger than memory is never loaded whole.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..axes import CANONICAL, to_canonical, validate_axes

Index = tuple[Any, ...]


class CanonicalView:
    """Read blocks of an array in canonical order without loading it.

    Parameters
    ----------
    arr : array-like
        Anything with ``shape``, ``dtype`` and numpy-style basic slicing.
    axes : str
        The array's axes.
    """

    def __init__(self, arr: Any, axes: str) -> None:
        self.arr = arr
        self.axes = validate_axes(axes, len(arr.shape))
        self.dtype = np.dtype(arr.dtype)
        sizes = dict(zip(self.axes, arr.shape))
        self.shape = tuple(int(sizes.get(a, 1)) for a in CANONICAL)
        self.ndim = 6

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        index = tuple(index) + (slice(None),) * (6 - len(index))
        src = []
        for a in self.axes:
            src.append(index[CANONICAL.index(a)])
        block = np.asarray(self.arr[tuple(src)])
        kept = [a for a, ix in zip(self.axes, src) if not isinstance(ix, (int, np.integer))]
        present = [a for a in CANONICAL if a in kept]
        block = np.transpose(block, [kept.index(a) for a in present])
        expand = []
        for a, ix in zip(CANONICAL, index):
            if isinstance(ix, (int, np.integer)):
                continue
            expand.append(slice(None) if a in present else np.newaxis)
        return block[tuple(expand)]

    def prefetch(self, indices: list[Index], ahead: Callable[[], list[Index]] = list) -> None:
        """Read ahead what canonical ``indices`` (and ``ahead()``) will read, where the array can (a ChunkCache)."""
        fetch = getattr(self.arr, "prefetch", None)
        if fetch is not None:
            own = lambda ixs: [tuple(ix[CANONICAL.index(a)] for a in self.axes) for ix in ixs]  # noqa: E731
            fetch(own(indices), lambda: own(ahead()))


def canonical(arr: Any, axes: str) -> Any:
    """Canonical view of ``arr``: a numpy view for numpy arrays, else a :class:`CanonicalView`."""
    if isinstance(arr, np.ndarray):
        return to_canonical(arr, axes)
    return CanonicalView(arr, axes)


@functools.lru_cache(maxsize=64)
def _layout(axes: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Each axis's canonical position, the canonical axes ``axes`` lacks, and the order from canonical to ``axes``."""
    axes = validate_axes(axes)
    present = [a for a in CANONICAL if a in axes]
    drop = tuple(i for i, a in enumerate(CANONICAL) if a not in axes)
    return tuple(CANONICAL.index(a) for a in axes), drop, tuple(present.index(a) for a in axes)


def _placed(axes: str, index: tuple[slice, ...], block: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    """A canonical-order ``index`` and ``block`` laid out as ``axes``."""
    where, drop, order = _layout(axes)
    b = block.reshape([s for i, s in enumerate(block.shape) if i not in drop])
    return tuple(index[i] for i in where), np.transpose(b, order)


def write_block(out: Any, axes: str, index: tuple[slice, ...], block: np.ndarray) -> None:
    """Write a canonical-order ``block`` into ``out`` (laid out as ``axes``) at canonical ``index``."""
    ix, b = _placed(axes, index, block)
    out[ix] = b


def write_blocks(writes: list[tuple[Any, str, tuple[slice, ...], np.ndarray]]) -> None:
    """Write canonical blocks ``(out, axes, index, block)`` that change distinct storage units (:func:`storage_unit`).

    Where every ``out`` is a zarr array, in one zarr call: zarr encodes and stores them concurrently
    (as the chunks of one large write), without a zarr call and a thread per block. Else in turn.
    A failed write is raised after every write has ended.
    """
    found: dict[int, Any] = {}  # each output's setter, looked up once per call
    for out, *_ in writes:
        if id(out) not in found:
            found[id(out)] = _async_setter(out)
    setters = [found[id(out)] for out, *_ in writes]
    if len(writes) < 2 or not all(setters):
        for w in writes:
            write_block(*w)
        return
    from zarr.core.sync import sync

    coros = [set_(*_placed(axes, ix, b)) for set_, (_, axes, ix, b) in zip(setters, writes) if set_ is not None]
    results = sync(_gather(coros))
    for r in results:
        if isinstance(r, BaseException):
            raise r


async def _gather(coros: list[Any]) -> list[Any]:
    """Run ``coros`` concurrently; their results, or the exceptions they raised."""
    import asyncio

    return await asyncio.gather(*coros, return_exceptions=True)


def _async_setter(out: Any) -> Callable[[tuple[slice, ...], np.ndarray], Any] | None:
    """``out``'s asynchronous ``setitem`` where it is a zarr array (through a write-through wrapper's ``cast``)."""
    arr = getattr(out, "arr", out)
    set_ = getattr(getattr(arr, "async_array", None), "setitem", None) if storage_unit(out) is not None else None
    if not callable(set_):
        return None
    try:
        import zarr.core.sync  # noqa: F401
    except ImportError:
        return None
    cast = getattr(out, "cast", None)
    return lambda ix, value: set_(ix, cast(value) if cast is not None else value)


def chunk_keys(ranges: list[tuple[int, int]], chunks: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The keys (chunk positions) of the chunks of shape ``chunks`` that per-axis ``(start, stop)`` ranges touch."""
    return list(itertools.product(*(range(lo // c, -(-hi // c)) for (lo, hi), c in zip(ranges, chunks))))


def storage_unit(out: Any) -> tuple[int, ...] | None:
    """What one write of ``out`` stores at once: a zarr array's shard (or chunk) shape.

    None for anything else, where writes to different regions are not known to be independent.
    """
    arr = getattr(out, "arr", out)  # through a write-through wrapper (batch.store.CastArray)
    if type(arr).__module__.split(".")[0] != "zarr":
        return None
    unit = getattr(arr, "shards", None) or getattr(arr, "chunks", None)
    if not isinstance(unit, tuple) or len(unit) != len(arr.shape):
        return None
    return unit if all(isinstance(c, int) and c > 0 for c in unit) else None


def touched_units(
    out: Any, axes: str, index: tuple[slice, ...], unit: tuple[int, ...] | None = None
) -> set[tuple[int, ...]] | None:
    """The storage units (see :func:`storage_unit`; ``unit`` when known) a write at canonical ``index`` changes;
    None where unknown."""
    unit = unit or storage_unit(out)
    if unit is None:
        return None
    bounds = [index[i].indices(n)[:2] for i, n in zip(_layout(axes)[0], out.shape)]
    return set(chunk_keys(bounds, unit))
