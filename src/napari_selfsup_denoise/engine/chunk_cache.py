"""Reading a chunked array (zarr) in whole chunks, the most recent ones kept decoded (:class:`ChunkCache`)."""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .arrays import Index, chunk_keys

ROW_READS = 4  # rows of chunks read at once by one prefetch, at most


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
        rows: list[list[tuple[int, ...]]] = []
        for lead, keys in now.items():
            for cand in (keys | later.get(lead, set()), keys):
                edges = [max(k[d] for k in cand) - min(k[d] for k in cand) + 1 for d in range(len(self.shape))]
                if int(np.prod(np.multiply(edges, self.chunks))) * self.dtype.itemsize * 4 <= self.max_bytes:
                    rows.append(sorted(cand))
                    break
        if len(rows) < 2:
            for one in rows:
                self._fetch(one)
            return
        with ThreadPoolExecutor(min(len(rows), ROW_READS), thread_name_prefix="selfsup-fetch") as pool:
            read = list(pool.map(self._read, rows))  # several rows read at once (each decoded concurrently by zarr)
        for one, (data, box) in zip(rows, read):
            self._keep(one, data, box)

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
        if keys:
            self._keep(keys, *self._read(keys))

    def _read(self, keys: list[tuple[int, ...]]) -> tuple[np.ndarray, tuple[slice, ...]]:
        """The chunk-aligned box around ``keys``, read in one call (any thread), and where it lies."""
        lo = [min(k[d] for k in keys) for d in range(len(self.shape))]
        hi = [max(k[d] for k in keys) + 1 for d in range(len(self.shape))]
        box = tuple(slice(a * c, min(b * c, n)) for a, b, c, n in zip(lo, hi, self.chunks, self.shape))
        return np.asarray(self.arr[box]), box

    def _keep(self, keys: list[tuple[int, ...]], data: np.ndarray, box: tuple[slice, ...]) -> None:
        """Keep each chunk of the box ``data`` read at ``box`` (the reader's thread: the cache is not locked)."""
        self.fetches += 1
        lo = [s.start // c for s, c in zip(box, self.chunks)]
        hi = [-(-s.stop // c) for s, c in zip(box, self.chunks)]
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
