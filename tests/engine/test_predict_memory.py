"""The automatic tile's memory model for the blind-spot core path: what it claims covers what a pass holds.

Peak memory is counted, not sampled from the process: every tensor a forward pass
makes is tracked by its storage from the operation that made it until it is freed.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.nets import core


class PeakBytes(TorchDispatchMode):
    """Largest total size of the tensors made inside the block that were alive at once (after each operation)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[StorageWeakRef, int]] = {}
        self.peak = 0

    def track(self, *tensors: torch.Tensor) -> None:
        """Count ``tensors`` (made before the block) from now on, and their views as themselves."""
        for t in tensors:
            storage = t.untyped_storage()
            self.live.setdefault(storage.data_ptr(), (StorageWeakRef(storage), storage.nbytes()))
        self.peak = max(self.peak, sum(n for _, n in self.live.values()))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: D105
        out = func(*args, **(kwargs or {}))
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.track(*(t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)))
        return out


def _model(ndim: int, depth: int, base: int = 8) -> Model:
    axes = "ZYX" if ndim == 3 else "YX"
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", depth=depth, base_channels=base, axes=axes))
    torch.manual_seed(1)
    net = get_method(cfg).build(ndim, 1).eval()
    return Model(net, cfg, axes, ndim, 1, Normalisation("meanstd", (10.0,), (3.0,)))


def _peak(model: Model, window: tuple[int, ...]) -> int:
    """Peak bytes of the pipeline's call on one window, the window itself included."""
    x, peak = torch.randn(1, 1, *window), PeakBytes()
    peak.track(x)
    with torch.inference_mode(), peak:
        model.method.infer(model.net, x, PredictConfig(), margin=model.margin)
    return peak.peak


@pytest.mark.parametrize(("ndim", "depth", "core_shape"), [(2, 2, (96, 80)), (2, 3, (64, 72)), (3, 1, (16, 24, 20))])
def test_the_memory_model_covers_the_counted_peak_of_a_pass(ndim, depth, core_shape):
    model = _model(ndim, depth)
    window = tuple(n + 2 * model.margin for n in core_shape)
    claimed, counted = core.core_bytes(model.net, window, model.margin), _peak(model, window)
    assert counted <= claimed <= 1.3 * counted, (counted, claimed)


def test_the_automatic_tile_fits_the_memory_it_claims(monkeypatch):
    """auto_tile picks the largest tile whose pass fits a quarter of free memory; the pass holds no more."""
    model, cpu = _model(2, 2), torch.device("cpu")
    m = model.margin
    quarter = predict_mod.window_bytes(model, (128 + 2 * m,) * 2, False) + 1
    monkeypatch.setattr(predict_mod, "available_memory", lambda _device: 4 * quarter)
    tile = predict_mod.auto_tile(model, cpu, False)
    assert tile == 128
    assert _peak(model, (tile + 2 * m,) * 2) <= quarter
    # the whole-window model (bytes per window voxel) would have halved this tile
    assert model.method.bytes_per_pixel(model.net) * (tile + 2 * m) ** 2 > quarter


def test_tta_and_batches_scale_the_claim():
    model = _model(2, 2)
    window = (64 + 2 * model.margin,) * 2
    one = core.core_bytes(model.net, window, model.margin)
    assert core.core_bytes(model.net, window, model.margin, batch=3) == 3 * one
    assert one < core.core_bytes(model.net, window, model.margin, tta=True) < 2 * one
    assert predict_mod.window_bytes(model, window, False) == one


def test_decoder_levels_run_on_their_cuts(monkeypatch):
    """The decoder reads fewer voxels than the branch's input crop (the cuts of the shipped 2D net)."""
    net = _model(2, 2).net
    back, side = core.context(2, net.multiple)
    assert core.decoder_crops(2, back, side) == [(42, 22), (16, 8)]
    assert core.decoder_crops(3, 104, 48) == [(98, 46), (44, 20), (18, 8)]
    seen: list[tuple[int, ...]] = []
    real = core._decode

    def decode(block, low, skip):
        seen.append(tuple(skip[0].shape[2:]))
        return real(block, low, skip)

    monkeypatch.setattr(core, "_decode", decode)
    m = net.margin
    with torch.inference_mode():
        core.core_forward(net, torch.randn(1, 1, 96 + 2 * m, 96 + 2 * m), m)
    level0 = (96 + back - 42, 96 + 2 * side - 44)
    assert seen[1::2] == [level0] * net.directions  # (each direction: level 1, then level 0)
    assert math.prod(level0) < 0.6 * (96 + back) * (96 + 2 * side)


def _head_peak(net, features: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The fuse layers' output on ``features`` (handed over) and the peak bytes of the run."""
    box, peak = [features], PeakBytes()
    peak.track(box[0])
    del features
    with torch.inference_mode(), peak:
        out = core._head(net, box)
    return out, peak.peak


def test_the_fuse_layers_run_in_slabs_with_the_same_output_and_less_memory(monkeypatch):
    """Where the fuse layers' peak dominates (large cores), slabs keep it near the features' size."""
    model = _model(2, 1)
    net, n = model.net, 4 * 8  # 4 directions x 8 channels of features
    features = torch.randn(1, n, 256, 192).contiguous(memory_format=torch.channels_last)
    whole, whole_peak = _head_peak(net, features.clone())
    monkeypatch.setattr(core, "HEAD_SLAB", 4096)  # 21 rows of the 192-wide core
    slabs, slab_peak = _head_peak(net, features.clone())
    torch.testing.assert_close(slabs, whole, rtol=1e-5, atol=1e-6)
    assert whole_peak >= 2 * features.nbytes and slab_peak <= 1.2 * features.nbytes, (whole_peak, slab_peak)
    window = (256 + 2 * model.margin, 192 + 2 * model.margin)
    claimed, counted = core.core_bytes(net, window, model.margin), _peak(model, window)
    assert counted <= claimed <= 1.3 * counted, (counted, claimed)
