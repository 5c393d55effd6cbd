"""Prediction runs each blind-spot direction on the context it sees: the same output from fewer voxels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import PredictConfig
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.nets import core
from napari_selfsup_denoise.engine.nets.blindspot import BlindSpotNet

CASES = [  # ndim, depth, core shape (non-square, and a core smaller than the margin)
    (2, 1, (8, 12)),
    (2, 2, (16, 8)),
    (2, 3, (16, 24)),
    (3, 1, (8, 6, 10)),
]


def _net(ndim: int, depth: int, dtype: torch.dtype = torch.float32) -> BlindSpotNet:
    torch.manual_seed(0)
    net = BlindSpotNet(ndim, channels=2, depth=depth, base=4).to(dtype).eval()
    with torch.no_grad():  # biases away from zero: a zero-padded crop would then show at once
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net


@pytest.mark.parametrize(("ndim", "depth", "shape"), CASES)
def test_core_forward_is_the_whole_window_output_without_its_margin(ndim, depth, shape):
    net = _net(ndim, depth)
    m = net.margin
    x = torch.randn(2, 2, *(n + 2 * m for n in shape))
    with torch.inference_mode():
        want = core.crop_margin(net(x), m)
        got = core.core_forward(net, x, m)
    assert got.shape == want.shape == (2, 4, *shape)
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))


def test_one_grid_step_less_context_changes_the_output(monkeypatch):
    """The crops of the shipped 2D net (depth 2) are tight: the test above would catch a crop one step short.

    float64: the far edge of the receptive field adds ~1e-6, near float32's rounding. (Rounding the reach up
    to the grid can leave a spare step elsewhere: in 3D, depth 1, 18 rows back would do where 20 are read.)
    """
    net = _net(2, 2, torch.float64)
    m, k = net.margin, net.multiple
    x = torch.randn(1, 2, 16 + 2 * m, 8 + 2 * m, dtype=torch.float64)
    with torch.inference_mode():
        want = core.crop_margin(net(x), m)
        assert float((core.core_forward(net, x, m) - want).abs().max()) < 1e-12
        back, side = core.context(2, k)
        for short in ((back - k, side), (back, side - k)):
            monkeypatch.setattr(core, "context", lambda *_a, short=short: short)
            assert float((core.core_forward(net, x, m) - want).abs().max()) > 1e-9


def test_branches_read_about_half_the_voxels_in_3d_and_2d():
    net3, net2 = BlindSpotNet(3, 1, depth=1, base=4), BlindSpotNet(2, 1, depth=2, base=4)
    crops, whole = core.branch_voxels(net3, (72, 104, 104), 20)  # a 32 x 64 x 64 core
    assert whole == 6 * 72 * 104 * 104 and crops == 6 * 52 * 84 * 84  # 47 %
    crops, whole = core.branch_voxels(net2, (200, 200), 52)  # a 96 x 96 core
    assert whole == 4 * 200 * 200 and crops == 4 * 144 * 144  # 52 %
    seen = []  # the first block reads the branch's input behind two zero rows
    net3.branch.enc[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].numel()))
    with torch.inference_mode():
        core.core_forward(net3, torch.randn(1, 1, 72, 104, 104), 20)
    assert sum(seen) == 2 * (52 + 2) * 84 * 84 + 4 * (84 + 2) * 52 * 84  # Z first, then Y (X) first


def test_a_margin_below_the_context_is_refused():
    net = BlindSpotNet(2, 1, depth=2, base=4)
    with pytest.raises(ValueError, match="at least 48"):
        core.core_forward(net, torch.randn(1, 1, 96, 96), 44)


def _model(ndim: int):
    from napari_selfsup_denoise import TrainConfig
    from napari_selfsup_denoise.config import resolve_defaults
    from napari_selfsup_denoise.engine.data import Normalisation
    from napari_selfsup_denoise.engine.methods import get_method
    from napari_selfsup_denoise.engine.model import Model

    axes = "ZYX" if ndim == 3 else "YX"
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", depth=1 if ndim == 3 else 2, base_channels=4, axes=axes))
    torch.manual_seed(1)
    net = get_method(cfg).build(ndim, 1).eval()
    return Model(net, cfg, axes, ndim, 1, Normalisation("meanstd", (10.0,), (3.0,)))


@pytest.mark.parametrize(("ndim", "shape", "tile"), [(3, (8, 20, 18), 8), (2, (70, 90), 32)])
def test_prediction_equals_the_whole_window_path_tiled_or_not(monkeypatch, ndim, shape, tile):
    """Tiled == whole, and both equal what the whole-window forward pass (the path before) gives."""
    model = _model(ndim)
    img = np.random.default_rng(0).normal(10, 3, shape).astype(np.float32)
    run = lambda t: drain(predict_mod.predict(model, img, PredictConfig(tile=t, precision="fp32")))  # noqa: E731
    whole, tiled = run(256), run(tile)
    real = model.method.infer

    def whole_window(net, x, pcfg, margin=0):
        return {k: core.crop_margin(v, margin) for k, v in real(net, x, pcfg).items()}

    monkeypatch.setattr(model.method, "infer", whole_window)
    before = run(256)
    np.testing.assert_allclose(tiled, whole, atol=1e-4, rtol=0)
    np.testing.assert_allclose(whole, before, atol=1e-4, rtol=0)


def test_a_thin_3d_stack_gets_larger_tiles_where_memory_is_the_limit(monkeypatch):
    """The automatic tile counts a short axis at its length: 32 planes are not a 128-voxel cube."""
    model = _model(3)  # margin 20
    quarter = predict_mod.window_bytes(model, (72, 168, 168), False)
    assert predict_mod.window_bytes(model, (168, 168, 168), False) > quarter
    monkeypatch.setattr(predict_mod, "available_memory", lambda _device: 4 * quarter)
    cpu = torch.device("cpu")
    assert predict_mod.auto_tile(model, cpu, False) == 64  # a 168^3 window would not fit
    assert predict_mod.auto_tile(model, cpu, False, (32, 192, 192)) == 128  # a 72 x 168 x 168 one does


@pytest.mark.parametrize(
    ("ndim", "depth", "base", "edge", "kflop"),
    [(2, 2, 24, 256, 270), (3, 1, 16, 32, 870)],  # the shipped nets; before the decoder cuts: 351 and 1690
)
def test_the_core_path_costs_what_was_counted(ndim, depth, base, edge, kflop):
    """Floating-point operations per output pixel of a window's core, counted on the meta device (no clock)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = BlindSpotNet(ndim, 1, depth, base).eval().to("meta")
    m = net.margin
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        core.core_forward(net, torch.empty((1, 1, *(edge + 2 * m,) * ndim), device="meta"), m)
    assert counter.get_total_flops() / edge**ndim <= kflop * 1e3


def test_module_hooks_see_every_level_of_every_direction():
    """A stop inside the pass (module pre-hooks, ``engine._abort``) is checked at each encoder and decoder level."""
    net = _net(2, 2)
    calls: list[torch.nn.Module] = []
    for module in net.modules():
        module.register_forward_pre_hook(lambda mod, _args: calls.append(mod))
    m = net.margin
    with torch.inference_mode():
        core.core_forward(net, torch.randn(1, 2, 16 + 2 * m, 8 + 2 * m), m)
    for block in [*net.branch.enc, *(dec.conv2 for dec in net.branch.dec)]:
        assert sum(c is block for c in calls) == net.directions


@pytest.mark.parametrize("ndim", [2, 3])
def test_each_direction_is_turned_back_in_one_copy_with_the_same_values(ndim):
    """On the CPU the turned-back features are copied once through numpy's (backward-running) views."""
    from napari_selfsup_denoise.engine.nets.blindspot import _empty, _turn, _turn_back_into

    shape = (1, 5, 12, 12) if ndim == 2 else (1, 5, 8, 8, 8)
    base = torch.randn(*shape, generator=torch.Generator().manual_seed(3))
    assert _turn(base, 0) is base  # torch.rot90 by 0 copied it into the channels-first layout
    for k in range(4 if ndim == 2 else 6):
        part = _empty(base, tuple(_turn(base, k).shape))
        part.copy_(_turn(base, k))
        part = part.narrow(2, 1, part.shape[2] - 2)  # a cut, as the core path hands over
        out = _empty(base, (1, 10, *_turn(part, k, inverse=True).shape[2:]))
        _turn_back_into(out[:, 5:], part, k)
        torch.testing.assert_close(out[:, 5:], _turn(part, k, inverse=True), rtol=0, atol=0)
