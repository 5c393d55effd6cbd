"""Where predicted blocks go (:class:`Sink`), and the zarr writes in flight meanwhile (:class:`Puts`).

Blocks of one write call that change distinct storage units (zarr chunks or
shards) go to zarr at once, which encodes and stores them concurrently. Several
such calls run at once in a few threads (:data:`PUT_CALLS`, growing with the
cores), as long as no two calls in flight change the same storage unit; the
tiles of a call are reported only once it has ended, in the order submitted.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..axes import to_canonical
from .arrays import storage_unit, touched_units, write_block, write_blocks
from .windows import Box

CHUNK_WRITERS = 8  # blocks written in one zarr call at most (held up to the cores), where each has its own chunks
PUT_CALLS = max(2, min(4, (os.cpu_count() or 1) // 4))  # zarr write calls in flight at most
PUT_CALLS = int(os.environ.get("SELFSUP_DENOISE_PUT_CALLS", "0")) or PUT_CALLS  # a knob for benchmarks
PUT_BYTES = 64 << 20  # bytes of blocks in flight at most, beside the call being started (GPU batches: ~32 MB a call)

Block = tuple[str, int, int, Box, np.ndarray]  # (output key, sample, time point, core box, (C, *core) block)
Placed = tuple[Any, str, tuple[slice, ...], np.ndarray]  # (array, axes, canonical index, canonical block)


class Sink:
    """Where outputs go: arrays laid out as ``axes``; float32 numpy arrays on the CPU are written in place."""

    def __init__(self, outs: dict[str, Any], axes: str, ndim: int, device: torch.device) -> None:
        self.outs, self.axes, self.ndim = {k: v for k, v in outs.items() if v is not None}, axes, ndim
        fast = device.type == "cpu"
        self.direct = fast and all(isinstance(a, np.ndarray) and a.dtype == np.float32 for a in self.outs.values())
        self._canon = {k: to_canonical(a, axes) for k, a in self.outs.items()} if self.direct else {}
        self.workers = min(CHUNK_WRITERS, os.cpu_count() or 1)
        self._units = {k: storage_unit(a) for k, a in self.outs.items()}  # looked up once: zarr's are properties
        self.chunked = bool(self.outs) and all(u is not None for u in self._units.values())

    def view(self, key: str, s: int, t: int, box: Box) -> torch.Tensor:
        """The output's block ``(C, *core)`` as a writable tensor (direct sinks only)."""
        plane = self._canon[key][s, t] if self.ndim == 3 else self._canon[key][s, t, :, 0]
        return torch.from_numpy(plane[(slice(None), *(slice(lo, hi) for lo, hi in box))])

    def _index(self, s: int, t: int, box: Box) -> tuple[slice, ...]:
        spatial = [slice(lo, hi) for lo, hi in box]
        return (slice(s, s + 1), slice(t, t + 1), slice(None), *([slice(0, 1)] if self.ndim == 2 else []), *spatial)

    def write(self, key: str, s: int, t: int, box: Box, block: np.ndarray) -> None:
        """Write a block ``(C, *core)``."""
        write_block(self.outs[key], self.axes, self._index(s, t, box), self._block(block))

    def place(self, blocks: list[Block]) -> tuple[list[Placed], set[tuple[Any, ...]] | None]:
        """The blocks as canonical writes, and the storage units they change: None unless all are distinct."""
        seen: set[tuple[Any, ...]] | None = set()
        for key, s, t, box, _ in blocks:
            units = touched_units(self.outs[key], self.axes, self._index(s, t, box), self._units[key])
            if units is None or seen is None or not seen.isdisjoint((key, *u) for u in units):
                seen = None
                break
            seen.update((key, *u) for u in units)
        return [(self.outs[k], self.axes, self._index(s, t, b), self._block(v)) for k, s, t, b, v in blocks], seen

    def write_all(self, blocks: list[Block]) -> None:
        """Write blocks: at once where no two change the same zarr chunk (one zarr call), else in turn."""
        placed, units = self.place(blocks)
        _write(placed, units)

    def _block(self, block: np.ndarray) -> np.ndarray:
        """A ``(C, *core)`` block as a canonical ``(1, 1, C, Z, Y, X)`` one."""
        return (block[:, None] if self.ndim == 2 else block)[None, None]


def _write(placed: list[Placed], units: set[tuple[Any, ...]] | None) -> None:
    if units:
        write_blocks(placed)
        return
    for p in placed:
        write_block(*p)


class Puts:
    """Write calls of a :class:`Sink` in flight: :meth:`put` starts one, :meth:`landed` returns what has ended.

    A call whose blocks change distinct storage units runs in a thread (at most ``calls`` at once, holding at
    most :data:`PUT_BYTES` of blocks besides its own), after the calls in flight that change any of its units;
    any other call runs in the caller's thread after all of them. Each call's ``items`` are returned by
    :meth:`landed` once it has ended, in the order of the calls; a failed call raises there. :meth:`close`
    waits for every call in flight.
    """

    def __init__(self, sink: Sink, calls: int = 0) -> None:
        self.sink, self.calls = sink, max(1, calls or PUT_CALLS)
        self._pool: ThreadPoolExecutor | None = None
        self._flight: deque[tuple[Future[None] | None, set[tuple[Any, ...]], list[Any], int]] = deque()
        self._ended: list[Any] = []
        self._error: BaseException | None = None

    def put(self, blocks: list[Block], items: list[Any]) -> None:
        """Start writing ``blocks``; ``items`` are returned by :meth:`landed` once they are written."""
        self.check()
        placed, units = self.sink.place(blocks)
        if not placed:
            self._flight.append((None, set(), items, 0))
            return
        if not units or self.calls == 1:
            self._wait(lambda _: True)
            self.check()
            _write(placed, units)
            self._flight.append((None, set(), items, 0))
            return
        self._wait(lambda busy: not busy.isdisjoint(units) or len(self._flight) >= self.calls or self._full())
        self.check()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.calls, thread_name_prefix="selfsup-put")
        size = sum(p[3].nbytes for p in placed)
        self._flight.append((self._pool.submit(write_blocks, placed), units, items, size))

    def _full(self) -> bool:
        return sum(f[3] for f in self._flight) > PUT_BYTES

    def _wait(self, until_clear: Any) -> None:
        """Wait for the oldest calls while ``until_clear`` holds for the units of any call in flight."""
        while self._error is None and self._flight and any(until_clear(f[1]) for f in self._flight if f[1]):
            self._land_oldest()

    def _land_oldest(self) -> None:
        fut, _, items, _ = self._flight.popleft()
        try:
            if fut is not None:
                fut.result()
        except BaseException as exc:  # raised by check(), once the items written before it are returned
            self._error = exc
            return
        self._ended += items

    def landed(self, wait: bool = False) -> list[Any]:
        """The items of the calls ended since the last call, in order (all of them with ``wait``).

        After a failed call, the items of the calls before it are returned first; the next call raises.
        """
        while self._error is None and self._flight and (wait or self._head_done()):
            self._land_oldest()
        ended, self._ended = self._ended, []
        if not ended:
            self.check()
        return ended

    def _head_done(self) -> bool:
        fut = self._flight[0][0]
        return fut is None or fut.done()

    def check(self) -> None:
        """Raise the failure of a call, if one failed."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        """Wait for every call in flight (their failures are dropped: the first was raised, or the run stopped)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._flight.clear()
