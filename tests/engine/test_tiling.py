"""PredictConfig.max_pass_voxels: no forward pass puts more network voxels through the network than the bound."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import ConfigError, resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.tiling import Grid


def _model(ndim: int = 2) -> Model:
    axes = "ZYX" if ndim == 3 else "YX"
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", depth=2 if ndim == 2 else 1, base_channels=8, axes=axes))
    torch.manual_seed(0)
    return Model(get_method(cfg).build(ndim, 1).eval(), cfg, axes, ndim, 1, Normalisation("meanstd", (10.0,), (3.0,)))


def _predict(model: Model, img: np.ndarray, pcfg: PredictConfig) -> tuple[np.ndarray, list, list[int]]:
    """The output, the progress events and the voxels of every forward pass (counted at the network)."""
    passes: list[int] = []
    hook = model.net.register_forward_pre_hook(lambda _m, args: passes.append(args[0].numel()))
    gen, events = predict_mod.predict(model, img, pcfg), []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as end:
        out = end.value
    finally:
        hook.remove()
    return out, events, passes


def test_every_pass_keeps_to_the_bound_and_the_output_does_not_change():
    model = _model()
    img = np.random.default_rng(0).normal(10, 3, (100, 120)).astype(np.float32)
    free, _, whole = _predict(model, img, PredictConfig(precision="fp32"))
    bound = 2 * (32 + 2 * model.margin) ** 2
    pcfg = PredictConfig(precision="fp32", max_pass_voxels=bound)
    bounded, events, passes = _predict(model, img, pcfg)
    assert max(whole) > bound  # without the bound one pass is larger
    assert max(passes) <= bound and len(passes) > 1
    assert passes == predict_mod.pass_voxels(model, (1, 1, 1, 1, 100, 120), "YX", pcfg)
    assert {ev.info["pass_voxels"] for ev in events} == {max(passes)}
    np.testing.assert_allclose(bounded, free, atol=1e-4)


def test_the_bound_limits_how_many_windows_share_a_pass():
    model, cpu = _model(), torch.device("cpu")
    window = (16 + 2 * model.margin,) * 2
    assert predict_mod.tiles_per_forward(model, cpu, False, window) == predict_mod.MAX_BATCH["cpu"]
    assert predict_mod.tiles_per_forward(model, cpu, False, window, 2 * math.prod(window) + 1) == 2
    assert predict_mod.tiles_per_forward(model, cpu, False, window, 1) == 1  # an explicit tile was checked before


def test_on_a_gpu_a_plan_runs_in_several_passes_and_small_margin_nets_get_smaller_tiles(monkeypatch):
    """CUDA: four 1024^2 tiles are four passes (their copies overlap); a long plan still fills passes of 32."""
    model, cuda, cpu = _model(), torch.device("cuda"), torch.device("cpu")
    monkeypatch.setattr(predict_mod, "available_memory", lambda _device: 80 << 30)  # an H100's, without a GPU

    def passes(n: int, edge: int, device: torch.device = cuda) -> list[int]:
        tiles = [predict_mod.Tile(0, i, ((0, edge), (0, edge))) for i in range(n)]
        return [len(g) for g in predict_mod._groups(model, device, PredictConfig(), tiles)]

    assert passes(4, 1024) == [1, 1, 1, 1]
    assert passes(512, 512) == [predict_mod.MAX_BATCH["cuda"]] * (512 // predict_mod.MAX_BATCH["cuda"])
    assert passes(4, 64, cpu) == [4]  # off CUDA nothing is spread
    assert model.margin <= predict_mod.CUDA_SMALL_TILE[0] and predict_mod.auto_tile(model, cuda, False) == 1024
    monkeypatch.setattr(Model, "margin", property(lambda _self: 112))  # the blind-spot net's (depth 3)
    assert predict_mod.auto_tile(model, cuda, False) == 2048


def test_an_explicit_tile_over_the_bound_or_a_bound_below_any_window_is_refused():
    model = _model()
    m = model.margin
    with pytest.raises(ConfigError, match=r"tile 64 needs windows of .* max_pass_voxels=1,000"):
        predict_mod.pick_tile(model, PredictConfig(tile=64, max_pass_voxels=1000), (100, 120))
    assert predict_mod.pick_tile(model, PredictConfig(tile=64, max_pass_voxels=(64 + 2 * m) ** 2), (100, 120)) == 64
    with pytest.raises(ConfigError, match="below the smallest window"):
        predict_mod.pick_tile(model, PredictConfig(max_pass_voxels=10), (100, 120))
    with pytest.raises(ConfigError, match="max_pass_voxels must be >= 1"):
        PredictConfig(max_pass_voxels=0)


def test_the_bounded_tile_is_the_cheapest_tiling_that_fits():
    """A 3D stack: halving the 128 tile (64) costs more than cutting 192 in two (96); both fit the bound."""
    grid, shape = Grid(3, 2, 20), (32, 192, 192)
    bound = 1_400_000
    assert math.prod(grid.window(128, shape)) > bound >= math.prod(grid.window(96, shape))
    tile = grid.fitting(128, shape, bound)
    assert tile == 96 and 96 in grid.candidates(128, shape) and 64 in grid.candidates(128, shape)
    assert grid.voxels(96, shape) < grid.voxels(64, shape)
    for t in grid.candidates(128, shape):
        if math.prod(grid.window(t, shape)) <= bound:
            assert grid.voxels(tile, shape) <= grid.voxels(t, shape)
    assert grid.fitting(128, None, bound) == 64  # shape unknown: the largest tile that fits


def test_the_automatic_tile_is_kept_when_it_fits():
    model = _model(3)
    pcfg = PredictConfig(device="cpu")
    auto = predict_mod.pick_tile(model, pcfg, (8, 40, 40))
    roomy = PredictConfig(device="cpu", max_pass_voxels=math.prod(Grid(3, model.multiple, model.margin).window(auto)))
    assert predict_mod.pick_tile(model, roomy, (8, 40, 40)) == auto


def test_frames_of_a_time_lapse_share_passes_up_to_the_bound():
    model = _model()
    img = np.random.default_rng(1).normal(10, 3, (7, 24, 20)).astype(np.float32)
    free, _, together = _predict(model, img.copy(), PredictConfig(precision="fp32"))
    window = math.prod(Grid(2, model.multiple, model.margin).window(1024, (24, 20)))
    pcfg = PredictConfig(precision="fp32", max_pass_voxels=3 * window)
    bounded, _, passes = _predict(model, img.copy(), pcfg)
    assert together == [7 * window]  # one pass for the 7 frames without the bound
    assert passes == [3 * window, 3 * window, window]
    assert passes == predict_mod.pass_voxels(model, (1, 7, 1, 1, 24, 20), "TYX", pcfg)
    np.testing.assert_allclose(bounded, free, atol=1e-4)
