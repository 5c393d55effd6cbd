"""The prediction pipeline: read ahead, predict batches of windows on the device, write behind.

A reader thread reads the in-image blocks of the next batches (into pinned
memory for a GPU); the calling thread copies them to the device without
waiting, mirrors and normalises them into one batch of windows, runs one
forward pass for several tiles, crops and de-normalises on the device and
starts the copy back; a writer thread waits for that copy and writes the
blocks out. Nothing synchronises per tile except the copies. On the CPU,
float32 numpy outputs are written in place by the de-normalisation itself.

Batches are fixed runs of consecutive same-shaped tiles of the whole plan, so
the same tile always meets the same neighbours in a forward pass (a resumed
batch job computes bit for bit what a clean one does).
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import PredictConfig
from ._fast_conv import batch_one_conv3d
from .data import dihedral
from .device import autocast, is_oom, resolve_precision
from .events import PredictProgress
from .sink import Puts, Sink
from .stages import Prefetch, WriteBehind
from .windows import (
    LIMITED,
    Box,
    Normaliser,
    Raw,
    core_slices,
    empty_batch,
    raw_index,
    read_raw,
    split_box,
    window_index,
    window_shape,
)

PREFETCH = 2  # batches read ahead
WRITE_BEHIND = 2  # batches waiting to be written
AHEAD_PIXELS = 1 << 21  # core pixels of the next tiles of a frame whose chunks a read may fetch with its own


@dataclass(frozen=True)
class Tile:
    """One core box of one sample and time point; ``key`` names the work unit it belongs to."""

    s: int
    t: int
    box: Box
    key: str = ""
    write: bool = True

    @property
    def pixels(self) -> int:
        """Output pixels per channel."""
        return math.prod(hi - lo for lo, hi in self.box)


def _forward(model: Any, x: torch.Tensor, pcfg: PredictConfig, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    transforms = [(k, f) for f in (False, True) for k in range(4)] if pcfg.tta else [(0, False)]
    acc: dict[str, torch.Tensor] = {}
    with torch.inference_mode(), autocast(x.device, dtype), batch_one_conv3d(x.device, dtype, model.ndim):
        for k, f in transforms:
            res = model.method.infer(model.net, dihedral(x, k, f), pcfg, margin=model.margin)  # the cores only
            for key, v in res.items():
                v = dihedral(v.float(), k, f, inverse=True)
                acc[key] = acc[key] + v if key in acc else v
    if len(transforms) == 1:
        return acc
    return {k: v / len(transforms) for k, v in acc.items()}


def _ahead(work: list[list[Tile]], i: int, pad: int, sizes: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """One canonical index over the windows (cores +- ``pad``) of the next tiles (:data:`AHEAD_PIXELS`) of i's frame."""
    last, px, lo, hi = work[i][-1], 0, list(sizes), [0] * len(sizes)
    for t in itertools.chain.from_iterable(itertools.islice(work, i + 1, None)):
        if (t.s, t.t) != (last.s, last.t) or px >= AHEAD_PIXELS:
            break
        px += t.pixels
        lo, hi = [min(a, b - pad) for a, (b, _) in zip(lo, t.box)], [max(a, b + pad) for a, (_, b) in zip(hi, t.box)]
    span = [slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, sizes)]
    return [(last.s, last.t, slice(None), *([slice(0, 1)] * (3 - len(span))), *span)] if px else []


class Pipeline:
    """Predict tiles of one canonical array into a :class:`Sink`, splitting what runs out of memory."""

    def __init__(self, model: Any, canon: Any, pcfg: PredictConfig, device: torch.device, sink: Sink) -> None:
        self.model, self.canon, self.pcfg, self.device, self.sink = model, canon, pcfg, device, sink
        self.dtype = resolve_precision(pcfg.precision, device)
        self.sizes = tuple(canon.shape[6 - model.ndim :])
        self.cuda = device.type == "cuda"
        self.splits, self.limit = 0, 1 << 30
        # numpy in, float32 numpy out, on the CPU: reading is taking views, writing is done by the de-normalisation
        self.inline = not self.cuda and isinstance(canon, np.ndarray) and sink.direct
        self.norm = Normaliser(model.norm, serial=not self.inline)  # beside the reader's and writer's threads
        self._held: list[tuple[Tile, list[tuple[Box, dict[str, Any]]]]] = []  # computed, not yet written
        self.puts = Puts(sink)  # the writes in flight

    def read(self, work: list[list[Tile]], i: int) -> list[Raw]:
        """Reader thread: the raw blocks of batch ``i`` (pinned for a GPU), its missing chunks fetched first
        together with those of the next tiles of its frame (:data:`AHEAD_PIXELS`) where the cache allows."""
        m, group = self.model, work[i]
        if hasattr(self.canon, "prefetch"):
            own = [raw_index(self.canon.shape, t.s, t.t, t.box, m.margin, m.multiple, m.ndim) for t in group]
            self.canon.prefetch(own, lambda: _ahead(work, i, m.margin + m.multiple, self.sizes))
        # NaN check in single-threaded pieces on the CPU only (a spinning OpenMP team there slows the compute)
        args = (m.margin, m.multiple, m.ndim, self.cuda, not (self.inline or self.cuda))
        return [read_raw(self.canon, t.s, t.t, t.box, *args) for t in group]

    def _forward_batch(self, items: list[tuple[Tile, Raw, Box]]) -> dict[str, torch.Tensor]:
        m = self.model
        x = empty_batch(len(items), self.canon.shape[2], window_shape(items[0][2], m.margin, m.multiple), self.device)
        for b, (_, raw, box) in enumerate(items):
            idx = window_index(box, self.sizes, m.margin, m.multiple)
            data = raw.data
            if data.dtype in LIMITED and self.device.type != "cpu":  # CUDA converts after the (half-size) copy
                data = data.to(self.device, non_blocking=True).float() if self.cuda else data.float()
            data = data.to(self.device, non_blocking=True)
            self.norm.window_into(x[b], data, idx, raw.origin)
        return _forward(m, x, self.pcfg, self.dtype)

    def compute(self, items: list[tuple[Tile, Raw, Box]]) -> list[list[tuple[Box, dict[str, Any]]]]:
        """Outputs of each item as ``(box, {key: host block or None if written in place})`` pieces."""
        if (n := self.limit) < len(items):
            return [r for i in range(0, len(items), n) for r in self.compute(items[i : i + n])]
        try:
            res = self._forward_batch(items)
        except (RuntimeError, MemoryError) as exc:
            if not is_oom(exc) or (len(items) == 1 and all(hi - lo <= self.model.multiple for lo, hi in items[0][2])):
                raise
            res = None
        if res is None:  # retried outside the handler, so the failed batch's tensors are freed first
            return self._back_off(items)
        return [[(box, self._outputs(res, b, tile, box))] for b, (tile, _, box) in enumerate(items)]

    def _back_off(self, items: list[tuple[Tile, Raw, Box]]) -> list[list[tuple[Box, dict[str, Any]]]]:
        if self.cuda:
            torch.cuda.empty_cache()
        self.splits += 1
        if len(items) > 1:
            self.limit = max(1, len(items) // 2)
            return self.compute(items)
        tile, raw, box = items[0]
        return [[p for sub in split_box(box, self.model.multiple) for p in self.compute([(tile, raw, sub)])[0]]]

    def _outputs(self, res: dict[str, torch.Tensor], b: int, tile: Tile, box: Box) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, v in res.items():
            if key not in self.sink.outs:
                continue
            crop = v[b][core_slices(box, 0)]  # the forward pass returned the windows' cores
            if self.sink.direct:
                self.norm.denormalise_into(key, crop, self.sink.view(key, tile.s, tile.t, box))
                out[key] = None
                continue
            block = self.norm.denormalise_into(key, crop, torch.empty(crop.shape, device=self.device))
            if self.cuda:
                block = torch.empty(block.shape, dtype=block.dtype, pin_memory=True).copy_(block, non_blocking=True)
            out[key] = block.cpu()  # a no-op on the CPU and for the pinned CUDA copy
        return out

    def write(self, job: tuple[list[tuple[Tile, list[tuple[Box, dict[str, Any]]]]], Any, bool]) -> list[Tile]:
        """Writer thread: wait for the batch's copies, start writing its blocks; the tiles finished (written).

        Blocks for a chunked (zarr) output are held until there are as many as cores (or the last batch), then
        go to zarr in one call: batches of fewer blocks (one large tile on the CPU) are still encoded in parallel.
        Such calls run while later batches are computed (:class:`.sink.Puts`); the last batch waits for all.
        """
        done, event, last = job
        if event is not None:
            event.synchronize()
        self._held += done
        blocks = [(key, tile.s, tile.t, box, block.numpy()) for tile, pieces in self._held
                  for box, out in pieces for key, block in out.items() if block is not None]  # fmt: skip
        if last or not self.sink.chunked or len(blocks) >= self.sink.workers:
            held, self._held = self._held, []
            self.puts.put(blocks, [tile for tile, _ in held])
        return self.puts.landed(wait=last)

    def _step(self, group: list[Tile], raws: list[Raw]) -> tuple[list[Any], Any]:
        """Compute one batch; the writer's job: the tiles to write with their outputs, and the copy's event."""
        outs = self.compute([(t, r, t.box) for t, r in zip(group, raws)])
        event = torch.cuda.Event() if self.cuda else None
        if event is not None:
            event.record()
        return [(t, o) for t, o in zip(group, outs) if t.write], event

    def run(self, groups: list[list[Tile]], stop: threading.Event | None) -> Iterator[Tile]:
        """Predict every group that has a tile to write; yield tiles as their outputs are written.

        A single batch, or an in-memory prediction on the CPU (:attr:`inline`), runs in this thread:
        there is nothing to overlap, and threads would only add hand-offs.
        """
        work = [g for g in groups if any(t.write for t in g)]
        here = len(work) == 1 or self.inline
        reader = None if here else Prefetch(range(len(work)), lambda i: self.read(work, i), PREFETCH)
        writer = None if here else WriteBehind(self.write, WRITE_BEHIND)
        try:
            for i, raws in reader or ((i, self.read(work, i)) for i in range(len(work))):
                if stop is not None and stop.is_set():
                    break
                job = (*self._step(work[i], raws), i == len(work) - 1)
                yield from itertools.chain.from_iterable(writer.submit(job)) if writer else self.write(job)
            yield from itertools.chain.from_iterable(writer.drain() if writer else [])
            self.puts.check()  # a failed write call, after the tiles written before it
        finally:
            if reader is not None and writer is not None:
                reader.close()
                writer.close(wait=False)
            self.puts.close()  # no write goes on after the run


def progress(
    pipe: Pipeline,
    tiles: Iterator[Tile],
    total: int,
    px_total: int,
    info: dict[str, Any],
    written: list[Tile] | None = None,
) -> Generator[PredictProgress, None, None]:
    """A :class:`PredictProgress` with ``done=0`` first (prediction has started: the tiles are counted, no
    forward pass has run), then one per written tile (``info['key']`` names its unit), which joins ``written``.
    """
    t0, done, px = time.perf_counter(), 0, 0
    yield PredictProgress(
        done=0, total=total, pixels_done=0, pixels_total=px_total, elapsed=0.0, eta=0.0, info={**info, "splits": 0}
    )
    for tile in tiles:
        if written is not None:
            written.append(tile)
        done, px = done + 1, px + tile.pixels
        el = time.perf_counter() - t0
        eta = el / px * (px_total - px) if px else 0.0
        extra = {"splits": pipe.splits, "key": tile.key}
        yield PredictProgress(
            done=done, total=total, pixels_done=px, pixels_total=px_total, elapsed=el, eta=eta, info={**info, **extra}
        )
