"""Zarr writes in flight (engine/sink.py ``Puts``): several calls at once on distinct chunks, never two on one chunk,
tiles reported once written, failures raised and every call ended before the run returns."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from pipeline_helpers import run as _run  # tests/engine is on the path (pytest's rootdir-less import mode)
from pipeline_helpers import tiny_model as _model

from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine import sink as sink_mod
from napari_selfsup_denoise.engine.sink import Puts, Sink

zarr = pytest.importorskip("zarr")


def _slow_calls(monkeypatch, delay: float = 0.03, fail_at: int = 0) -> dict:
    """Make each zarr write call (``write_blocks``) slow; count the calls in flight and the chunks they hold."""
    state, lock = {"now": 0, "most": 0, "calls": 0, "clash": False, "busy": set()}, threading.Lock()
    real = sink_mod.write_blocks

    def slow(placed):
        keys = {(id(a), tuple((ix.start, ix.stop) for ix in index)) for a, _, index, _ in placed}
        with lock:
            state["calls"] += 1
            n = state["calls"]
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["clash"] |= not state["busy"].isdisjoint(keys)
            state["busy"] |= keys
        try:
            time.sleep(delay)
            if fail_at and n == fail_at:
                raise OSError("disk gone")
            real(placed)
        finally:
            with lock:
                state["now"] -= 1
                state["busy"] -= keys

    monkeypatch.setattr(sink_mod, "write_blocks", slow)
    return state


def test_several_zarr_write_calls_run_while_later_tiles_are_computed(tmp_path, monkeypatch):
    monkeypatch.setitem(predict_mod.MAX_BATCH, "cpu", 2)
    monkeypatch.setattr(sink_mod, "CHUNK_WRITERS", 2)
    monkeypatch.setattr(sink_mod, "PUT_CALLS", 3)
    model = _model()
    img = np.random.default_rng(3).integers(0, 30, (3, 64, 64)).astype(np.uint16)
    out = zarr.create_array(str(tmp_path / "o.zarr"), shape=img.shape, chunks=(1, 16, 16), dtype="float32")
    state = _slow_calls(monkeypatch)
    _run(model, img, 16, "cpu", axes="TYX", out=out)
    assert state["calls"] >= 6 and state["most"] >= 2  # one call at a time before (the writer waited for each)
    assert not state["clash"]
    assert not [t for t in threading.enumerate() if t.name.startswith("selfsup-")]
    np.testing.assert_allclose(out[:], _run(model, img.astype(np.float32), 16, "cpu", axes="TYX"), atol=1e-4)


def _blocks(keys_boxes):
    return [("denoised", 0, t, box, np.full((1, 8, 8), float(t), np.float32)) for t, box in keys_boxes]


def test_a_call_on_a_chunk_in_flight_waits_for_it_and_tiles_land_in_order(tmp_path, monkeypatch):
    out = zarr.create_array(str(tmp_path / "o.zarr"), shape=(4, 16, 16), chunks=(1, 16, 16), dtype="float32")
    state = _slow_calls(monkeypatch, delay=0.05)
    puts = Puts(Sink({"denoised": out}, "TYX", 2, torch.device("cpu")), calls=4)
    a, b = ((0, 8), (0, 8)), ((8, 16), (0, 8))
    puts.put(_blocks([(0, a), (1, a)]), ["first"])
    puts.put(_blocks([(2, a), (3, a)]), ["second"])
    puts.put(_blocks([(0, b)]), ["third"])  # frame 0's chunk is in flight: waits for the first call
    assert puts.landed(wait=True) == ["first", "second", "third"]
    puts.close()
    assert not state["clash"] and state["most"] >= 2, state
    assert float(out[0, 0, 0]) == 0.0 and float(out[0, 8, 0]) == 0.0 and float(out[3, 0, 0]) == 3.0


def test_a_failed_call_is_raised_and_the_others_end_before_close_returns(tmp_path, monkeypatch):
    out = zarr.create_array(str(tmp_path / "o.zarr"), shape=(6, 8, 8), chunks=(1, 8, 8), dtype="float32")
    state = _slow_calls(monkeypatch, delay=0.05, fail_at=2)
    puts = Puts(Sink({"denoised": out}, "TYX", 2, torch.device("cpu")), calls=3)
    box = ((0, 8), (0, 8))
    for t in range(3):
        puts.put(_blocks([(2 * t, box), (2 * t + 1, box)]), [t])
    assert puts.landed(wait=True) == [0]  # what was written before the failed call is reported first
    with pytest.raises(OSError, match="disk gone"):
        puts.landed(wait=True)
    with pytest.raises(OSError, match="disk gone"):
        puts.put(_blocks([(0, box)]), [9])  # nothing more is started
    puts.close()
    assert state["now"] == 0  # nothing is still writing once close returns


def test_the_bytes_in_flight_are_bounded(tmp_path, monkeypatch):
    out = zarr.create_array(str(tmp_path / "o.zarr"), shape=(6, 8, 8), chunks=(1, 8, 8), dtype="float32")
    state = _slow_calls(monkeypatch, delay=0.03)
    box = ((0, 8), (0, 8))
    for limit, most in ((1 << 20, 3), (300, 1)):  # 3 calls of 2 blocks (512 bytes each): all at once; or one
        monkeypatch.setattr(sink_mod, "PUT_BYTES", limit)
        state["most"] = 0
        puts = Puts(Sink({"denoised": out}, "TYX", 2, torch.device("cpu")), calls=3)
        for t in range(3):
            puts.put(_blocks([(2 * t, box), (2 * t + 1, box)]), [t])
        assert puts.landed(wait=True) == [0, 1, 2]
        puts.close()
        assert state["most"] == most


def test_a_failed_write_call_in_a_run_surfaces_and_leaves_no_thread(tmp_path, monkeypatch):
    monkeypatch.setitem(predict_mod.MAX_BATCH, "cpu", 2)
    monkeypatch.setattr(sink_mod, "CHUNK_WRITERS", 2)
    monkeypatch.setattr(sink_mod, "PUT_CALLS", 3)
    img = np.random.default_rng(4).integers(0, 30, (3, 64, 64)).astype(np.uint16)
    out = zarr.create_array(str(tmp_path / "o.zarr"), shape=img.shape, chunks=(1, 16, 16), dtype="float32")
    state = _slow_calls(monkeypatch, fail_at=3)
    t0 = time.monotonic()
    with pytest.raises(OSError, match="disk gone"):
        _run(_model(), img, 16, "cpu", axes="TYX", out=out)
    assert time.monotonic() - t0 < 30 and state["now"] == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("selfsup-")]
