"""Canonical-order (``S, T, C, Z, Y, X``) access to any array-like, lazily.

numpy arrays get a zero-copy transposed view; other arrays (zarr, dask,
tifffile memmaps behind a wrapper) are read block by block on indexing, so
a stack larger than memory is never loaded whole.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections import OrderedDict
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


class ChunkCache:
    """Read a chunked array (zarr) in whole chunks, keeping the most recent ones decoded.

    Neighbouring tiles read overlapping windows (their halos); through the
    cache every chunk is fetched and decoded once as long as it stays among
    the most recently used. A block inside one fetched box is returned as a
    view of it: read it, do not write into it. Safe for one reader thread.

    Chunks are kept as views of the box they were fetched in, so a kept chunk
    keeps its whole box alive: :attr:`nbytes` counts the boxes kept alive
    (not only the chunks), and the least recently used chunks are dropped
    until it is within ``max_bytes`` (the newest box alone may exceed it).

    Parameters
    ----------
    arr : array-like
        Anything with ``shape``, ``dtype``, ``chunks`` (a tuple of ints) and basic slicing.
    max_bytes : int
        Decoded bytes kept at most (64 MB: the three rows of chunks that row-major
        tiles with halos revisit, for planes up to ~20,000 pixels wide in 512^2 uint16 chunks).
    """

    def __init__(self, arr: Any, max_bytes: int = 64 * 1024**2) -> None:
        self.arr, self.shape, self.dtype = arr, tuple(arr.shape), np.dtype(arr.dtype)
        self.chunks = tuple(int(c) for c in arr.chunks)
        self.max_bytes, self.nbytes, self.fetches = max_bytes, 0, 0
        self._cache: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()
        self._home: dict[tuple[int, ...], tuple[np.ndarray, tuple[int, ...]]] = {}  # each chunk's fetched box
        self._live: dict[int, int] = {}  # id of each box kept alive -> its chunks in the cache

    def _ranges(self, index: tuple[Any, ...]) -> list[tuple[int, int]] | None:
        """``(start, stop)`` per axis of a basic index, or None where it is not cached (strided, or too large)."""
        ranges = []
        for ix, n in zip(index, self.shape):
            if isinstance(ix, (int, np.integer)):
                i = int(ix) % n
                ranges.append((i, i + 1))
            else:
                start, stop, step = ix.indices(n)
                if step != 1:
                    return None
                ranges.append((start, max(start, stop)))
        if math.prod(hi - lo for lo, hi in ranges) * self.dtype.itemsize * 2 > self.max_bytes:
            return None
        return ranges

    def prefetch(self, indices: list[Index], ahead: Callable[[], list[Index]] = list) -> None:
        """Fetch the chunks that ``indices`` (and ``ahead()``, where it fits) will read, one call per leading chunk row.

        Zarr decodes the chunks of one call concurrently, and each call has a fixed cost: reading tile by tile
        decodes a few chunks per call. Bounded: a row's box takes at most a quarter of :attr:`max_bytes`;
        ``ahead()`` (what later reads will ask for; asked only when a chunk is missing) joins a row only
        within that bound, and a row of ``indices`` that exceeds it is left to the reads.
        """
        now = self._missing(indices)
        later = self._missing(ahead()) if now else {}
        for lead, keys in now.items():
            for row in (keys | later.get(lead, set()), keys):
                box = [max(k[d] for k in row) - min(k[d] for k in row) + 1 for d in range(len(self.shape))]
                if int(np.prod(np.multiply(box, self.chunks))) * self.dtype.itemsize * 4 <= self.max_bytes:
                    self._fetch(sorted(row))
                    break

    def _missing(self, indices: list[Index]) -> dict[tuple[int, ...], set[tuple[int, ...]]]:
        """The chunks ``indices`` read that are not kept, by leading chunk row (all but the last two axes)."""
        keys: set[tuple[int, ...]] = set()
        for index in indices:
            ranges = self._ranges(tuple(index) + (slice(None),) * (len(self.shape) - len(index)))
            if ranges is not None:
                keys.update(chunk_keys(ranges, self.chunks))
        rows: dict[tuple[int, ...], set[tuple[int, ...]]] = {}
        for key in keys - self._cache.keys():
            rows.setdefault(key[:-2], set()).add(key)
        return rows

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        index = tuple(index) + (slice(None),) * (len(self.shape) - len(index))
        ranges = self._ranges(index)
        if ranges is None:
            return np.asarray(self.arr[index])
        grid = chunk_keys(ranges, self.chunks)
        for key in grid:  # the block's kept chunks first, so that the fetch does not drop them
            if key in self._cache:
                self._cache.move_to_end(key)
        self._fetch([k for k in grid if k not in self._cache])
        data, origin = self._home[grid[0]]
        if all(self._home[k][0] is data for k in grid):  # one fetched box holds the block: a view of it
            block = data[tuple(slice(lo - o, hi - o) for (lo, hi), o in zip(ranges, origin))]
            return block[tuple(0 if isinstance(ix, (int, np.integer)) else slice(None) for ix in index)]
        block = np.empty([hi - lo for lo, hi in ranges], self.dtype)
        for key in grid:
            chunk = self._cache[key]
            src, dst = [], []
            for k, c, (lo, hi) in zip(key, self.chunks, ranges):
                a, b = max(lo, k * c), min(hi, (k + 1) * c)
                src.append(slice(a - k * c, b - k * c))
                dst.append(slice(a - lo, b - lo))
            block[tuple(dst)] = chunk[tuple(src)]
        return block[tuple(0 if isinstance(ix, (int, np.integer)) else slice(None) for ix in index)]

    def _fetch(self, keys: list[tuple[int, ...]]) -> None:
        """Read the chunk-aligned box around ``keys`` in one call and keep each chunk."""
        if not keys:
            return
        lo = [min(k[d] for k in keys) for d in range(len(self.shape))]
        hi = [max(k[d] for k in keys) + 1 for d in range(len(self.shape))]
        box = tuple(slice(a * c, min(b * c, n)) for a, b, c, n in zip(lo, hi, self.chunks, self.shape))
        data = np.asarray(self.arr[box])
        self.fetches += 1
        for key in itertools.product(*(range(a, b) for a, b in zip(lo, hi))):
            if key in self._cache:
                self._drop(key)
            self._cache[key] = data[tuple(slice((k - a) * c, (k - a + 1) * c) for k, a, c in zip(key, lo, self.chunks))]
            self._home[key] = (data, tuple(s.start for s in box))
            if id(data) not in self._live:
                self._live[id(data)] = 0
                self.nbytes += data.nbytes
            self._live[id(data)] += 1
        while self.nbytes > self.max_bytes and self._home[next(iter(self._cache))][0] is not data:
            self._drop(next(iter(self._cache)))

    def _drop(self, key: tuple[int, ...]) -> None:
        """Forget chunk ``key``; its box's bytes are no longer counted once none of its chunks is kept."""
        del self._cache[key]
        data, _ = self._home.pop(key)
        self._live[id(data)] -= 1
        if not self._live[id(data)]:
            del self._live[id(data)]
            self.nbytes -= data.nbytes
