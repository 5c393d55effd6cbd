"""The pipeline on Zarr: the chunk cache, read-ahead and chunk-aligned writes equal the in-memory path."""

import asyncio
import contextlib
import os
import threading
import time

import numpy as np
import pytest
import torch
from pipeline_helpers import run as _run  # tests/engine is on the path (pytest's rootdir-less import mode)
from pipeline_helpers import tiny_model as _model

from napari_selfsup_denoise import PredictConfig
from napari_selfsup_denoise.engine import pipeline as pipeline_mod
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine import sink as sink_mod
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.chunk_cache import ChunkCache
from napari_selfsup_denoise.engine.events import drain


def test_uint16_zarr_input_through_the_chunk_cache_equals_numpy(tmp_path):
    zarr = pytest.importorskip("zarr")
    model = _model()
    img = np.random.default_rng(2).integers(0, 30, (2, 70, 90)).astype(np.uint16)
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype=img.dtype)
    z[:] = img
    out = zarr.create_array(str(tmp_path / "out.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype="float32")
    _run(model, z, 32, axes="TYX", out=out)
    np.testing.assert_allclose(out[:], _run(model, img.astype(np.float32), 32, axes="TYX"), atol=1e-4)


def _track_writes(monkeypatch, zarr):
    """Count zarr writes in flight: whole-array calls (``Array.__setitem__``) and the blocks of one call."""
    flight, lock = {"now": 0, "most": 0, "calls": 0}, threading.Lock()
    real_sync, real_async = zarr.Array.__setitem__, zarr.AsyncArray.setitem

    def enter():
        with lock:
            flight["now"] += 1
            flight["most"] = max(flight["most"], flight["now"])

    def leave():
        with lock:
            flight["now"] -= 1

    def tracked(self, index, value):
        flight["calls"] += 1
        enter()
        try:
            time.sleep(0.02)  # long enough for other writes to start
            real_sync(self, index, value)
        finally:
            leave()

    async def tracked_async(self, selection, value, prototype=None):
        enter()
        try:
            await asyncio.sleep(0.02)
            await real_async(self, selection, value, prototype)
        finally:
            leave()

    monkeypatch.setattr(zarr.Array, "__setitem__", tracked)
    monkeypatch.setattr(zarr.AsyncArray, "setitem", tracked_async)
    return flight


@pytest.mark.parametrize(("chunk", "parallel"), [(32, True), (64, False)])
def test_blocks_with_their_own_zarr_chunks_are_written_at_once_bit_for_bit(tmp_path, monkeypatch, chunk, parallel):
    """Tiles on the output's chunk grid are written concurrently; tiles sharing a chunk one at a time."""
    zarr = pytest.importorskip("zarr")
    model = _model()
    img = np.random.default_rng(7).integers(0, 30, (2, 64, 96)).astype(np.uint16)
    outs = []
    for writers in (sink_mod.CHUNK_WRITERS, 1):
        monkeypatch.setattr(sink_mod, "CHUNK_WRITERS", writers)
        out = zarr.create_array(str(tmp_path / f"{writers}.zarr"), shape=img.shape, chunks=(1, chunk, chunk),
                                dtype="float32")  # fmt: skip
        with monkeypatch.context() as m:
            flight = _track_writes(m, zarr)
            _run(model, img, 32, "cpu", axes="TYX", out=out)
        outs.append(out[:])
        if writers > 1:
            assert flight["most"] >= 2 if parallel and (os.cpu_count() or 1) > 1 else flight["most"] == 1
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[0], _run(model, img.astype(np.float32), 32, "cpu", axes="TYX"), atol=1e-4)


def _tracked_predict(zarr, monkeypatch, model, img, tile, path):
    """Predict ``img`` (TYX) into a float32 Zarr array of ``tile``-sized chunks at ``path``, counting its writes.

    Returns the output array, the progress events and :func:`_track_writes`' counters.
    """
    out = zarr.create_array(str(path), shape=img.shape, chunks=(1, tile, tile), dtype="float32")
    events: list = []
    with monkeypatch.context() as m:
        flight = _track_writes(m, zarr)
        cfg = PredictConfig(tile=tile, precision="fp32", device="cpu")
        drain(predict_mod.predict(model, img, cfg, axes="TYX", out=out), events.append)
    return out, events, flight


def test_blocks_on_distinct_chunks_go_to_zarr_in_one_call_per_batch(tmp_path, monkeypatch):
    """Zarr encodes the blocks of one call concurrently: no zarr call (and no thread) per block."""
    zarr = pytest.importorskip("zarr")
    monkeypatch.setitem(predict_mod.MAX_BATCH, "cpu", 4)
    model = _model()
    img = np.random.default_rng(5).integers(0, 30, (3, 64, 64)).astype(np.uint16)
    out, events, flight = _tracked_predict(zarr, monkeypatch, model, img, 16, tmp_path / "out.zarr")
    assert events[0].info["batch"] == 4 and len(events) - 1 == 3 * 16  # 12 batches of 4 blocks
    assert flight["calls"] == 0 and flight["most"] >= 4  # 48 calls of one block each on the old code
    assert not [t for t in threading.enumerate() if t.name.startswith("selfsup-")]
    np.testing.assert_allclose(out[:], _run(model, img.astype(np.float32), 16, "cpu", axes="TYX"), atol=1e-4)


def test_one_block_batches_are_still_written_several_chunks_at_once(tmp_path, monkeypatch):
    """Large tiles on the CPU make one-window batches: their blocks are held until several can go at once."""
    zarr = pytest.importorskip("zarr")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: blocks are written in turn")
    monkeypatch.setitem(predict_mod.MAX_BATCH, "cpu", 1)
    model = _model()
    img = np.random.default_rng(6).integers(0, 30, (2, 64, 96)).astype(np.uint16)
    out, events, flight = _tracked_predict(zarr, monkeypatch, model, img, 32, tmp_path / "o.zarr")
    assert events[0].info["batch"] == 1 and len(events) - 1 == 12  # every tile reported once written
    assert flight["most"] >= 2  # one at a time before session 8
    np.testing.assert_allclose(out[:], _run(model, img.astype(np.float32), 32, "cpu", axes="TYX"), atol=1e-4)


def test_chunk_cache_reads_each_chunk_once_for_overlapping_windows():
    class Counting:
        def __init__(self, a):
            self.a, self.shape, self.dtype, self.chunks, self.read = a, a.shape, a.dtype, (8, 8), 0

        def __getitem__(self, ix):
            self.read += np.asarray(self.a[ix]).size
            return self.a[ix]

    base = np.arange(32 * 48).reshape(32, 48)
    src = Counting(base)
    cache = ChunkCache(src)
    for y in range(0, 32, 8):
        for x in range(0, 48, 8):  # 8x8 units with a 4-pixel halo
            ys, xs = slice(max(0, y - 4), y + 12), slice(max(0, x - 4), x + 12)
            np.testing.assert_array_equal(cache[ys, xs], base[ys, xs])
    assert src.read <= 2 * base.size  # without the cache: every pixel about 4 times
    np.testing.assert_array_equal(cache[3, 5:40], base[3, 5:40])


def test_chunk_cache_hands_out_blocks_of_one_fetch_without_copying():
    base = np.arange(32 * 48, dtype=np.uint16).reshape(32, 48)

    class Array:
        shape, dtype, chunks = base.shape, base.dtype, (8, 8)

        def __getitem__(self, ix):
            return base[ix].copy()

    cache = ChunkCache(Array())
    cache.prefetch([(slice(0, 32), slice(0, 48))])
    a, b = cache[4:20, 6:30], cache[10:20, 0:12]
    np.testing.assert_array_equal(a, base[4:20, 6:30])
    np.testing.assert_array_equal(b, base[10:20, 0:12])
    assert np.shares_memory(a, b)  # both views of the one fetched box
    cache = ChunkCache(Array())
    first = cache[0:8, 0:8]
    two = cache[0:8, 4:16]  # chunks of two fetches: assembled
    np.testing.assert_array_equal(two, base[0:8, 4:16])
    assert not np.shares_memory(first, two)


class _Logged:
    """A zarr array whose reads are logged in ``calls``."""

    def __init__(self, a, calls):
        self.a, self.shape, self.dtype, self.chunks, self.calls = a, a.shape, a.dtype, a.chunks, calls

    def __getitem__(self, ix):
        self.calls.append(ix)
        return self.a[ix]


class _Slow:
    """An array whose reads are slow, counting those in flight at once."""

    def __init__(self, a):
        self.a, self.state, self.lock = a, {"now": 0, "most": 0}, threading.Lock()

    def __getitem__(self, ix):
        with self.lock:
            self.state["now"] += 1
            self.state["most"] = max(self.state["most"], self.state["now"])
        try:
            time.sleep(0.05)
            return self.a[ix]
        finally:
            with self.lock:
                self.state["now"] -= 1


@contextlib.contextmanager
def _overlap(src):
    """Make the reads of ``src`` (a :class:`_Logged`) slow; yields the count of those in flight at once."""
    real, src.a = src.a, _Slow(src.a)
    try:
        yield src.a.state
    finally:
        src.a = real


def _logged_zarr(zarr, tmp_path, img):
    """``img`` in a zarr array of 1 x 16 x 16 chunks, read through :class:`_Logged`; returns it and its call log."""
    z = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(1, 16, 16), dtype=img.dtype)
    z[:] = img
    calls: list = []
    return _Logged(z, calls), calls


def test_a_batch_of_windows_fetches_its_chunks_ahead_in_one_call_per_frame(tmp_path):
    """The reader asks for a batch's chunks at once (zarr decodes those of a call concurrently): same blocks."""
    zarr = pytest.importorskip("zarr")
    from napari_selfsup_denoise.engine.arrays import CanonicalView

    img = np.random.default_rng(8).integers(0, 900, (3, 40, 56)).astype(np.uint16)
    model, (src, calls) = _model(), _logged_zarr(zarr, tmp_path, img)
    cache = ChunkCache(src)
    canon = CanonicalView(cache, "TYX")
    cpu = torch.device("cpu")
    pipe = pipeline_mod.Pipeline(model, canon, PredictConfig(tile=16), cpu, pipeline_mod.Sink({}, "TYX", 2, cpu))
    tiles = [pipeline_mod.Tile(0, t, ((y, y + 16), (x, x + 16))) for t in (1, 2) for y in (0, 16) for x in (0, 16, 32)]
    with _overlap(src) as reads:
        raws = pipe.read([tiles], 0)
    assert len(calls) == 2  # one call per frame, then every window from the cache
    assert reads["most"] == 2  # the two frames read at once (one after the other before session 11)
    want = pipeline_mod.Pipeline(model, canonical(img, "TYX"), PredictConfig(tile=16), cpu, pipe.sink)
    for got, ref in zip(raws, want.read([tiles], 0)):
        assert got.origin == ref.origin and torch.equal(got.data, ref.data)


def test_one_tile_batches_fetch_the_chunks_of_their_frame_in_one_call(tmp_path):
    """Batches of one window (large tiles on the CPU) read the next tiles' chunks of their frame with their own."""
    zarr = pytest.importorskip("zarr")
    from napari_selfsup_denoise.engine.arrays import CanonicalView

    img = np.random.default_rng(9).integers(0, 900, (2, 40, 56)).astype(np.uint16)
    model, (src, calls) = _model(), _logged_zarr(zarr, tmp_path, img)
    cpu, cache = torch.device("cpu"), ChunkCache(src)
    sink = pipeline_mod.Sink({}, "TYX", 2, cpu)
    pipe = pipeline_mod.Pipeline(model, CanonicalView(cache, "TYX"), PredictConfig(tile=16), cpu, sink)
    work = [[pipeline_mod.Tile(0, t, ((y, y + 16), (x, x + 16)))] for t in (0, 1) for y in (0, 16) for x in (0, 16, 32)]
    raws = [pipe.read(work, i)[0] for i in range(len(work))]
    assert len(calls) == 2  # one call per frame (the old reader: one per window with a missing chunk)
    want = pipeline_mod.Pipeline(model, canonical(img, "TYX"), PredictConfig(tile=16), cpu, sink)
    for i, got in enumerate(raws):
        ref = want.read(work, i)[0]
        assert got.origin == ref.origin and torch.equal(got.data, ref.data)
