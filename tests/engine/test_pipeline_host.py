"""The pipeline's host side on the CPU: no OpenMP team beside the codecs, the chunk cache's bound, zarr writes."""

import asyncio

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.arrays import write_blocks
from napari_selfsup_denoise.engine.chunk_cache import ChunkCache
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.windows import (
    SERIAL_NUMEL,
    Normaliser,
    empty_batch,
    serial_pieces,
    window_index,
)

ARITHMETIC = {"add", "add_", "mul", "mul_", "sub", "div", "copy_", "flip", "sum", "isfinite", "clamp"}  # not no-ops


class _Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.margin, self.multiple = 4, 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Record(TorchFunctionMode):
    """Records the name and the largest tensor argument (elements) of every torch call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        sizes = [a.numel() for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        self.calls.append((getattr(func, "__name__", str(func)), max(sizes, default=0)))
        return func(*args, **kwargs)


@pytest.fixture
def two_threads(monkeypatch):
    """Torch (and the engine's own setting) at two threads: with one, no team starts and nothing is cut."""
    before = torch.get_num_threads()
    monkeypatch.setenv("SELFSUP_DENOISE_THREADS", "2")
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _identity_model() -> Model:
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", depth=1, base_channels=4, axes="YX"))
    return Model(_Identity(), cfg, "YX", 2, 1, Normalisation("meanstd", (100.0,), (20.0,)))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_zarr_prediction_on_the_cpu_runs_torch_only_in_the_calling_thread(tmp_path, dtype, two_threads):
    """Beside the reader and writer threads, every torch operation of the host passes is cut below torch's
    grain size: a larger one starts an OpenMP team whose idle threads spin on the core zarr's codecs need."""
    zarr = pytest.importorskip("zarr")
    img = np.random.default_rng(0).poisson(100, (300, 290)).astype(dtype)
    src = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(128, 128), dtype=dtype)
    src[:] = img
    out = zarr.create_array(str(tmp_path / "out.zarr"), shape=img.shape, chunks=(128, 128), dtype="float32")
    pcfg = PredictConfig(tile=256, precision="fp32", device="cpu")  # 264^2 windows: 69,696 elements
    with _Record() as rec:
        drain(predict_mod.predict(_identity_model(), src, pcfg, axes="YX", out=out))
    big = {(name, n) for name, n in rec.calls if name in ARITHMETIC and n >= SERIAL_NUMEL}
    assert not big, sorted(big)  # add / copy_ over 69,696 elements on main
    np.testing.assert_allclose(out[:], img.astype(np.float32), atol=1e-4)


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "int32", "float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 9), (190, 200)])
def test_normalising_in_serial_pieces_gives_the_values_of_whole_passes(dtype, shape, two_threads):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 250, (2, *shape)).astype(dtype)  # (1, 9): a one-pixel axis fills its run
    norm = Normalisation("meanstd", (100.0, 7.0), (20.7, 3.3))
    idx = window_index(tuple((0, n) for n in shape), shape, 8, 4)  # 208 x 216 windows: cut in pieces
    outs = []
    for serial in (False, True):
        dst = torch.empty((2, len(idx[0]), len(idx[1])))
        Normaliser(norm, serial).window_into(dst, torch.from_numpy(raw), idx, (0, 0))
        back = Normaliser(norm, serial).denormalise_into("denoised", dst, torch.empty(dst.shape))
        spread = Normaliser(norm, serial).denormalise_into("uncertainty", dst, torch.empty(dst.shape))
        outs.append((dst, back, spread))
    for whole, cut in zip(*outs):
        torch.testing.assert_close(cut, whole, rtol=0, atol=0)
    mirrored = raw[:, np.ix_(idx[0], idx[1])[0], np.ix_(idx[0], idx[1])[1]].astype(np.float64)
    expected = (mirrored - np.array([100.0, 7.0])[:, None, None]) / np.array([20.7, 3.3])[:, None, None]
    np.testing.assert_allclose(outs[1][0].numpy(), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outs[1][1].numpy(), mirrored, rtol=1e-6, atol=1e-4)


def test_serial_pieces_cover_the_array_once_below_the_grain():
    for shape in [(3, 70000), (1, 5, 300, 300), (40, 1000), (0, 7), (5,)]:
        seen = np.zeros(shape, int)
        for cut in serial_pieces(shape):
            assert seen[cut].size < SERIAL_NUMEL
            seen[cut] += 1
        assert (seen == 1).all()


def _held_bytes(cache: ChunkCache) -> int:
    """The memory the cache really keeps alive: every distinct array its chunks are views of."""
    owners = {
        id(v.base if v.base is not None else v): v.base if v.base is not None else v for v in cache._cache.values()
    }
    return sum(a.nbytes for a in owners.values())


def test_chunk_cache_counts_the_fetched_boxes_its_chunks_keep_alive():
    """Kept chunks are views of their fetched box: one chunk kept of each of many boxes keeps them all alive."""
    base = np.arange(8 * 256, dtype=np.uint16).reshape(8, 256)  # one row of 32 chunks of 8 x 8 (128 bytes)

    class Array:
        shape, dtype, chunks = base.shape, base.dtype, (8, 8)

        def __getitem__(self, ix):
            return base[ix].copy()  # a fresh array per read, as zarr returns

    cache = ChunkCache(Array(), max_bytes=8 * 128)
    for x in range(0, 256, 32):
        np.testing.assert_array_equal(cache[0:8, x : x + 32], base[:, x : x + 32])  # a box of 4 chunks
        for first in range(max(0, x - 96), x + 1, 32):  # the first chunk of each of the last 4 boxes kept in use
            np.testing.assert_array_equal(cache[0:8, first : first + 8], base[:, first : first + 8])
        assert _held_bytes(cache) <= cache.max_bytes, (
            x,
            _held_bytes(cache),
        )  # 1536 at the 3rd box on the old code
        assert cache.nbytes == _held_bytes(cache)
    np.testing.assert_array_equal(cache[0:8, 0:40], base[:, 0:40])  # dropped chunks are fetched again


def test_blocks_written_in_one_zarr_call_raise_a_failure_after_every_write_has_ended(tmp_path, monkeypatch):
    zarr = pytest.importorskip("zarr")
    out = zarr.create_array(str(tmp_path / "o.zarr"), shape=(1, 8, 16), chunks=(1, 8, 8), dtype="float32")
    real = zarr.AsyncArray.setitem

    async def failing(self, selection, value, prototype=None):
        if selection[-1].start == 0:
            raise OSError("disk gone")
        await asyncio.sleep(0.05)  # ends after the failure
        await real(self, selection, value, prototype)

    monkeypatch.setattr(zarr.AsyncArray, "setitem", failing)
    blocks = [np.full((1, 1, 1, 1, 8, 8), v, np.float32) for v in (1.0, 2.0)]
    index = [(slice(0, 1), slice(0, 1), slice(None), slice(0, 1), slice(0, 8), slice(x, x + 8)) for x in (0, 8)]
    with pytest.raises(OSError, match="disk gone"):
        write_blocks([(out, "TYX", ix, b) for ix, b in zip(index, blocks)])
    np.testing.assert_array_equal(out[0, :, 8:], 2.0)  # the other write had ended
    np.testing.assert_array_equal(out[0, :, :8], 0.0)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_batch_of_windows_is_made_channels_last_without_a_copy(channels):
    cpu = torch.device("cpu")
    with _Record() as rec:
        x = empty_batch(2, channels, (64, 48), cpu)
    assert x.is_contiguous(memory_format=torch.channels_last) and x.shape == (2, channels, 64, 48)
    assert [name for name, _ in rec.calls] == ["empty"]  # empty, then a copy into channels_last on main
    assert empty_batch(1, 2, (8, 8, 8), torch.device("cpu")).is_contiguous()


def test_blocks_written_in_one_zarr_call_are_cast_as_one_at_a_time(tmp_path):
    """Through the batch writer's CastArray (an integer output): rounded and clipped the same way."""
    zarr = pytest.importorskip("zarr")
    from napari_selfsup_denoise.batch.store import CastArray

    values = np.array([[-3.4, 70000.6, 12.5, 12.49]], np.float32).repeat(8, 0).repeat(4, 1)  # 8 x 16
    outs = [zarr.create_array(str(tmp_path / f"{i}.zarr"), shape=(1, 8, 16), chunks=(1, 8, 8), dtype="uint16")
            for i in range(2)]  # fmt: skip
    index = [(slice(0, 1), slice(0, 1), slice(None), slice(0, 1), slice(0, 8), slice(x, x + 8)) for x in (0, 8)]
    blocks = [values[None, None, None, None, :, x : x + 8] for x in (0, 8)]
    write_blocks([(CastArray(outs[0]), "TYX", ix, b) for ix, b in zip(index, blocks)])
    CastArray(outs[1])[0:1] = values[None]
    np.testing.assert_array_equal(outs[0][:], outs[1][:])
    assert outs[0][0, 0, :8].tolist() == [0] * 4 + [65535] * 4


def test_one_thread_runs_whole_passes(monkeypatch):
    """With one torch thread no OpenMP team can start: the passes are not cut (each piece costs a call)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        norm = Normaliser(Normalisation("meanstd", (1.0,), (2.0,)), serial=True)
        block = torch.ones((1, 300, 300))
        with _Record() as rec:
            norm.denormalise_into("denoised", block, torch.empty(block.shape))
    finally:
        torch.set_num_threads(before)
    assert [name for name, _ in rec.calls if name in ARITHMETIC] == ["add"]


def test_window_geometry_is_computed_once_per_distinct_tile_position_not_per_tile(tmp_path, monkeypatch):
    """8 frames of 3 x 3 tiles: the windows' mirrored indices come from 3 positions per axis (the same 3 on both
    axes of a square plane), not from every tile in the reader (its read box) and again on the main thread."""
    zarr = pytest.importorskip("zarr")
    from napari_selfsup_denoise.engine import windows

    for cached in (windows._axis_index, windows._axis_bounds, windows._runs_of):
        cached.cache_clear()
    calls = []
    real = windows.reflect_index
    monkeypatch.setattr(windows, "reflect_index", lambda idx, size: calls.append(size) or real(idx, size))
    img = np.random.default_rng(0).poisson(100, (8, 96, 96)).astype(np.uint16)
    src = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype=img.dtype)
    src[:] = img
    out = zarr.create_array(str(tmp_path / "out.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype="float32")
    pcfg = PredictConfig(tile=32, precision="fp32", device="cpu")
    drain(predict_mod.predict(_identity_model(), src, pcfg, axes="TYX", out=out))
    assert len(calls) == 3  # was 2 per window index, 3 of them per tile (prefetch, read, window): 432 in all
    np.testing.assert_allclose(out[:], img, rtol=1e-6)  # the identity network: the input back
