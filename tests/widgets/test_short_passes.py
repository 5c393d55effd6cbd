"""The widgets' denoise ends promptly: short forward passes, and a stop that ends the pass in progress.

Quitting napari waits for the worker, and a forward pass over one 3D window of
the engine's automatic tile took 8.4 s (issue 10, item 13). How many seconds a
pass takes is bench_ui.py's question; these tests count network voxels and
modules run, which do not depend on the machine.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from napari_selfsup_denoise._widgets import _passes
from napari_selfsup_denoise._widgets._worker import checked_predict
from napari_selfsup_denoise.config import PredictConfig, TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine._abort import Stopped, stop_inside
from napari_selfsup_denoise.engine.events import PredictProgress

GIB = 1024**3


def _model(algorithm: str, axes: str, **net: int):
    """An untrained model at the defaults of ``algorithm`` (or the network sizes in ``net``)."""
    import torch

    from napari_selfsup_denoise.engine.data import Normalisation
    from napari_selfsup_denoise.engine.methods import get_method
    from napari_selfsup_denoise.engine.model import Model

    torch.manual_seed(0)
    ndim = 3 if "Z" in axes else 2
    cfg = resolve_defaults(TrainConfig(algorithm=algorithm, axes=axes, **net), ndim)
    return Model(get_method(cfg).build(ndim, 1), cfg, axes, ndim, 1, Normalisation("meanstd", (0.0,), (1.0,)))


@pytest.fixture
def plenty_of_memory(monkeypatch):
    """The engine's automatic tile as on a machine with 64 GiB free (it fills memory otherwise)."""
    monkeypatch.setattr("napari_selfsup_denoise.engine.predict.available_memory", lambda device: 64 * GIB)


@pytest.mark.parametrize("algorithm", ["n2v", "blindspot"])
def test_the_3d_sample_is_denoised_in_shorter_passes_at_about_the_same_cost(algorithm, plenty_of_memory):
    from napari_selfsup_denoise.engine.predict import pass_voxels

    model, image = _model(algorithm, "ZYX"), np.zeros((32, 192, 192), np.float32)
    pcfg = PredictConfig(device="cpu")
    asked = _passes.short_passes(model, image, "ZYX", pcfg)
    assert asked.max_pass_voxels is not None and asked.tile is None
    engine = pass_voxels(model, (1, 1, 1, 32, 192, 192), "ZYX", pcfg)
    widget = pass_voxels(model, (1, 1, 1, 32, 192, 192), "ZYX", asked)
    assert max(widget) <= asked.max_pass_voxels
    assert max(widget) <= 0.7 * max(engine), (engine, asked.max_pass_voxels, widget)
    assert sum(widget) <= _passes.SLOWER * sum(engine), (engine, asked.max_pass_voxels, widget)


def _every_candidate(model, image, axes, pcfg):
    """The bound short_passes chose before it stopped at the first candidate above the cost: all of them planned."""
    import dataclasses
    import math

    from napari_selfsup_denoise.engine.arrays import canonical
    from napari_selfsup_denoise.engine.predict import pass_voxels, pick_tile
    from napari_selfsup_denoise.engine.preview_cost import FORWARD_SHARE, step_voxels
    from napari_selfsup_denoise.engine.tiling import Grid

    shape = tuple(int(n) for n in canonical(image, axes).shape)
    limit = _passes.PASS_STEPS * step_voxels(model.config, model.ndim) / FORWARD_SHARE
    costs = {None: pass_voxels(model, shape, axes, pcfg)}
    if max(costs[None]) <= limit:
        return None
    spatial, grid = shape[6 - model.ndim :], Grid(model.ndim, model.multiple, model.margin)
    for tile in grid.candidates(pick_tile(model, pcfg, spatial), spatial):
        bound = math.prod(grid.window(tile, spatial))
        costs[bound] = pass_voxels(model, shape, axes, dataclasses.replace(pcfg, max_pass_voxels=bound))
    cheapest = min(sum(c) for c in costs.values())
    near = {b: c for b, c in costs.items() if sum(c) <= _passes.SLOWER * cheapest}
    short = [b for b, c in near.items() if max(c) <= limit]
    return min(short, key=lambda b: sum(near[b])) if short else min(near, key=lambda b: (max(near[b]), sum(near[b])))


@pytest.mark.parametrize(
    ("algorithm", "shape"),
    [("blindspot", (32, 192, 192)), ("n2v", (32, 192, 192)), ("blindspot", (20, 100, 300)), ("n2v", (60, 64, 500))],
)
def test_the_bound_is_found_without_planning_the_smallest_tiles(algorithm, shape, plenty_of_memory, monkeypatch):
    """Planning every candidate down to the smallest tile made ~150,000 passes' objects in the worker (3D sample)."""
    from napari_selfsup_denoise.engine import predict

    model, image, pcfg = _model(algorithm, "ZYX"), np.zeros(shape, np.float32), PredictConfig(device="cpu")
    expected = _every_candidate(model, image, "ZYX", pcfg)
    planned: list[int] = []
    real = predict.pass_voxels
    monkeypatch.setattr(predict, "pass_voxels", lambda *a: planned.append(len(passes := real(*a))) or passes)
    assert _passes.short_passes(model, image, "ZYX", pcfg).max_pass_voxels == expected
    assert max(planned) < 100, planned  # old code: up to 147,456 passes planned for the 3D sample


def test_a_2d_image_keeps_the_engines_plan(plenty_of_memory):
    model, image = _model("n2v", "YX"), np.zeros((512, 512), np.float32)
    for pcfg in (PredictConfig(device="cpu"), PredictConfig(tile=64), PredictConfig(max_pass_voxels=10**5)):
        assert _passes.short_passes(model, image, "YX", pcfg) is pcfg


def test_the_widgets_predict_with_the_short_pass_bound(monkeypatch, plenty_of_memory):
    from napari_selfsup_denoise.engine import checks, predict

    asked: list[int | None] = []

    def _predict(model, data, pcfg, **kwargs):
        asked.append(pcfg.max_pass_voxels)
        return np.zeros(data.shape, np.float32)
        yield  # a generator, like the engine's

    monkeypatch.setattr(checks, "decide", lambda model, data, axes, output: checks.Decision(output, None, None))
    monkeypatch.setattr(predict, "predict", _predict)
    model, image = _model("n2v", "ZYX"), np.zeros((32, 192, 192), np.float32)
    phases = [ev.name for ev in checked_predict(model, image, PredictConfig(device="cpu"), "ZYX")]
    assert phases == ["image-check", "denoising"]
    assert asked == [_passes.short_passes(model, image, "ZYX", PredictConfig(device="cpu")).max_pass_voxels]
    assert asked[0]


def test_stop_inside_ends_the_pass_at_the_next_module_of_this_thread_only():
    import torch

    net = _model("n2v", "ZYX", depth=1, base_channels=8).net.eval()
    x = torch.zeros(1, 1, 8, 16, 16)
    stop, ran = threading.Event(), []
    modules = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    for m in net.modules():
        m.register_forward_pre_hook(lambda mod, args: ran.append(mod))
    modules[1].register_forward_pre_hook(lambda mod, args: stop.set())
    with stop_inside(net, stop.is_set), torch.no_grad():
        with pytest.raises(Stopped):
            net(x)
        assert ran[-1] is modules[1]  # nothing ran after the module that saw the stop
        other: list[torch.Tensor] = []  # another thread using the same network is not stopped
        t = threading.Thread(target=lambda: other.append(net(x)))
        t.start()
        t.join()
        assert len(other) == 1 and other[0].shape == x.shape
    stop.set()
    with torch.no_grad():
        assert net(x).shape == x.shape  # the checks are gone after the block


def test_a_stop_during_a_forward_pass_ends_the_denoise_without_finishing_it():
    """The widgets' denoise (training's result, Denoise now, Denoise with a model) stops inside a pass."""
    import torch

    model = _model("n2v", "ZYX", depth=1, base_channels=8)
    image = np.random.default_rng(0).normal(100, 10, (8, 48, 48)).astype(np.float32)
    stop, armed, finished = threading.Event(), threading.Event(), []
    inner = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv3d)][1]
    inner.register_forward_pre_hook(lambda mod, args: stop.set() if armed.is_set() else None)  # quit arrives mid-pass
    model.net.register_forward_hook(lambda mod, args, out: finished.append(armed.is_set()))
    gen = checked_predict(model, image, PredictConfig(tile=16, device="cpu"), "ZYX", stop=stop)
    events = []
    try:
        while True:
            events.append(next(gen))
            if isinstance(events[-1], PredictProgress) and events[-1].done:
                armed.set()  # the next pass is interrupted
    except StopIteration as end:
        result = end.value
    assert result is None
    assert 0 < sum(isinstance(e, PredictProgress) and e.done > 0 for e in events) < 9  # some of the 9 tiles, not all
    assert finished.count(True) == 0, "a forward pass ran to its end after the stop"


def test_closing_the_dock_during_a_3d_denoise_ends_the_pass_in_progress(
    results, open_widget, qtbot, small, monkeypatch
):
    """What quitting napari waits for: the worker ends inside the forward pass that runs when the dock closes."""
    import torch

    from napari_selfsup_denoise.engine import predict as engine

    real, in_pass, closed, finished = engine.predict, threading.Event(), threading.Event(), []

    def _predict(model, image, config=None, **kwargs):
        def _hold(_mod, _args):  # the dock closes while this pass is inside the network
            if not in_pass.is_set():
                in_pass.set()
                closed.wait(60)

        [m for m in model.net.modules() if isinstance(m, torch.nn.Conv3d)][1].register_forward_pre_hook(_hold)
        model.net.register_forward_hook(lambda _mod, _args, _out: finished.append(closed.is_set()))
        return (yield from real(model, image, config, **kwargs))

    monkeypatch.setattr(engine, "predict", _predict)
    viewer, _, widget = open_widget()
    viewer.add_image(np.random.default_rng(0).normal(100, 10, (8, 48, 48)).astype(np.float32), name="stack")
    small(widget, steps=3)
    widget.form.axes.setText("ZYX")
    widget.form.preview.setChecked(False)
    worker = widget.start_training()
    qtbot.waitUntil(in_pass.is_set, timeout=120_000)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        widget.teardown()
        closed.set()
    assert finished == [], "the forward pass ran to its end after the dock closed"
    assert not results(viewer, "stack")
