"""The pipeline's host side on the CPU: numpy maths (no OpenMP team), the chunk cache's bound, zarr writes."""

import asyncio

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.arrays import ChunkCache, write_blocks
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.windows import Normaliser, window_index

ARITHMETIC = {"add", "add_", "mul", "mul_", "sub", "div", "copy_", "flip", "sum", "isfinite", "clamp"}  # not no-ops


class _Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.margin, self.multiple = 4, 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Record(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _identity_model() -> Model:
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", depth=1, base_channels=4, axes="YX"))
    return Model(_Identity(), cfg, "YX", 2, 1, Normalisation("meanstd", (100.0,), (20.0,)))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_cpu_prediction_runs_its_host_passes_without_torch_arithmetic(dtype):
    """A torch operation on the CPU starts an OpenMP team whose idle threads spin afterwards and take the
    core the reader's and writer's codecs need; with an identity network no torch arithmetic may run."""
    img = np.random.default_rng(0).poisson(100, (45, 38)).astype(dtype)
    model = _identity_model()
    with _Record() as rec:
        out = drain(predict_mod.predict(model, img, PredictConfig(tile=16, precision="fp32", device="cpu")))
    assert not ARITHMETIC & set(rec.names), sorted(ARITHMETIC & set(rec.names))
    np.testing.assert_allclose(out, img.astype(np.float32), atol=1e-4)


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "int32", "float32", "float64"])
def test_host_window_is_the_mirrored_normalised_block(dtype):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 250, (2, 1, 9)).astype(dtype)  # a one-pixel axis fills its run
    norm = Normaliser(Normalisation("meanstd", (100.0, 7.0), (20.0, 3.0)))
    idx = window_index(((0, 1), (0, 9)), (1, 9), 3, 4)
    dst = torch.empty((2, len(idx[0]), len(idx[1])))
    norm.window_into(dst, torch.from_numpy(raw), idx, (0, 0))
    mirrored = raw[:, np.ix_(idx[0], idx[1])[0], np.ix_(idx[0], idx[1])[1]].astype(np.float64)
    expected = (mirrored - np.array([100.0, 7.0])[:, None, None]) / np.array([20.0, 3.0])[:, None, None]
    np.testing.assert_allclose(dst.numpy(), expected, rtol=1e-6, atol=1e-6)
    back = norm.denormalise_into("denoised", dst, torch.empty(dst.shape))
    np.testing.assert_allclose(back.numpy(), mirrored, rtol=1e-6, atol=1e-4)
    spread = norm.denormalise_into("uncertainty", dst, torch.empty(dst.shape))
    np.testing.assert_allclose(spread.numpy(), expected * np.array([20.0, 3.0])[:, None, None], rtol=1e-6)


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
