"""Stop ends the training step in progress inside its forward or backward pass, and the step is discarded.

No wall-clock: the stop event is set from inside the network (a module or a gradient hook), and what
ran after it is counted in module calls.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine import train as train_mod
from napari_selfsup_denoise.engine._abort import Stopped, stop_inside
from napari_selfsup_denoise.engine.nets.unet import UNet

CFG = TrainConfig(algorithm="n2v", axes="ZYX", max_steps=20, max_seconds=None, patch_size=16, patch_size_z=8,
                  batch_size=2, depth=1, base_channels=4, batch_norm=True, seed=0, preview_every_s=1e9)  # fmt: skip


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    return np.random.default_rng(0).normal(100, 10, (16, 48, 48)).astype(np.float32)


@contextlib.contextmanager
def _calls() -> Iterator[list[torch.nn.Module]]:
    """Every module call (forward) in this process, in order."""
    seen: list[torch.nn.Module] = []
    handle = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, _a: seen.append(m))
    try:
        yield seen
    finally:
        handle.remove()


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def _after_one_step(stack: np.ndarray, stop: threading.Event) -> tuple[Any, torch.nn.Module, dict[str, torch.Tensor]]:
    """A run after its first step: the generator, its network and the network's state then."""
    with _calls() as seen:
        gen = train_mod.train(stack, CFG, stop=stop)
        next(gen)
    net = next(m for m in seen if isinstance(m, UNet))
    return gen, net, _state(net)


def _drain(gen: Any) -> Any:
    with pytest.raises(StopIteration) as end:
        while True:
            next(gen)
    return end.value.value


def test_stop_during_a_forward_pass_ends_the_step_and_discards_it(stack):
    """Old code: the step ran to its end (all its modules, its optimiser update and batch-norm statistics)."""
    stop = threading.Event()
    gen, net, after_one = _after_one_step(stack, stop)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    hook = convs[2].register_forward_pre_hook(lambda *_: stop.set())  # halfway down the network
    with _calls() as seen:
        ended = next(gen)
    hook.remove()
    assert getattr(ended, "phase", None) == "checking", "step 2 ran to its end"
    assert seen[seen.index(convs[2]) + 1 :] == [], "the pass went on after Stop"
    model = _drain(gen)
    assert model.summary["steps"] == 1 and model.summary["ended_by"] == "stopped"
    for key, value in _state(model.net).items():  # weights and batch-norm running statistics as after step 1
        assert torch.equal(value, after_one[key]), key


def test_stop_during_a_backward_pass_ends_it_before_the_first_layer(stack):
    """Old code: the backward pass reached the first layer and the optimiser updated the weights."""
    stop = threading.Event()
    gen, net, after_one = _after_one_step(stack, stop)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    reached = []
    hooks = [convs[-1].weight.register_hook(lambda g: stop.set()),  # the last layer's gradient comes first
             convs[0].weight.register_hook(lambda g: reached.append(1))]  # fmt: skip
    model = _drain(gen)
    for h in hooks:
        h.remove()
    assert reached == [] and model.summary["steps"] == 1
    for key, value in _state(model.net).items():
        assert torch.equal(value, after_one[key]), key


def test_stop_during_the_timed_probe_ends_the_run_before_its_first_step(stack):
    """Old code: the probe's step ran to its end (and the probe went on to its next step only after it)."""
    stop = threading.Event()
    seen_after: list[torch.nn.Module] = []

    def hook(module: torch.nn.Module, _args: tuple) -> None:
        if stop.is_set():
            seen_after.append(module)
        elif isinstance(module, torch.nn.Conv3d):
            stop.set()

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        gen = train_mod.train(stack, CFG.replace(max_seconds=60.0, max_steps=100_000), stop=stop)
        ended = next(gen)
    finally:
        handle.remove()
    assert getattr(ended, "phase", None) == "checking" and seen_after == []
    assert _drain(gen).summary["steps"] == 0


def test_training_says_when_it_has_ended_before_the_final_check(stack):
    """Old code: no event between the last step and the returned model (the widget kept saying "stopping…")."""
    stop = threading.Event()
    gen = train_mod.train(stack, CFG.replace(max_steps=3), stop=stop)
    events = [next(gen) for _ in range(4)]
    assert [(ev.step, ev.phase) for ev in events] == [(1, "training"), (2, "training"), (3, "training"),
                                                      (3, "checking")]  # fmt: skip
    with _calls() as seen:
        model = _drain(gen)
    assert seen, "the self-check runs after the event"
    assert model.summary["steps"] == 3 and events[-1].total == 3 and events[-1].eta == 0.0


def test_stop_inside_acts_only_in_the_thread_that_entered_it():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    x = torch.zeros(1, 1, 8, 8)
    done = []
    with stop_inside(net, lambda: True):
        worker = threading.Thread(target=lambda: done.append(net(x).shape))
        worker.start()
        worker.join()
        with pytest.raises(Stopped):
            net(x)
    assert done == [torch.Size([1, 2, 6, 6])]
    net(x)  # the hooks are gone


def test_stop_during_a_preview_ends_it_and_keeps_the_step_before_it():
    """Old code: the preview's forward passes (up to 6 training steps of compute) ran to their end."""
    img = np.random.default_rng(1).normal(100, 10, (64, 64)).astype(np.float32)
    stop = threading.Event()
    marks: list[int] = []

    def preview() -> np.ndarray:
        stop.set()  # Stop pressed as the preview starts
        marks.append(len(seen))
        return img

    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=20, max_seconds=None, patch_size=16, batch_size=2,
                      depth=1, base_channels=4, seed=0, preview_every_s=1e-9)  # fmt: skip
    with _calls() as seen:
        gen = train_mod.train(img, cfg, stop=stop, preview=preview)
        ended = next(gen)
        after = len(seen)
    assert getattr(ended, "phase", None) == "checking" and ended.step == 1  # the step before the preview is kept
    assert after - marks[0] <= 1, "the preview's pass went on after Stop"
    assert _drain(gen).summary["steps"] == 1


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_blind_spot_step_ends_inside_its_pass_too(where):
    """The blind-spot network (its direction branches, noise model): no update from the step Stop cut."""
    from napari_selfsup_denoise.engine.nets.blindspot import BlindSpotNet

    img = np.random.default_rng(2).normal(100, 10, (128, 128)).astype(np.float32)
    cfg = TrainConfig(algorithm="blindspot", axes="YX", max_steps=20, max_seconds=None, patch_size=96, batch_size=2,
                      depth=2, base_channels=8, seed=0, val_fraction=0.0, preview_every_s=1e9)  # fmt: skip
    stop = threading.Event()
    with _calls() as seen:
        gen = train_mod.train(img, cfg, stop=stop)
        next(gen)
    net = next(m for m in seen if isinstance(m, BlindSpotNet))
    after_one = _state(net)
    convs = list(dict.fromkeys(m for m in seen if isinstance(m, torch.nn.Conv2d)))  # those a step runs, in order
    reached: list[int] = []
    if where == "forward":
        hooks = [convs[len(convs) // 2].register_forward_pre_hook(lambda *_: stop.set())]
    else:
        hooks = [convs[-1].weight.register_hook(lambda g: stop.set()),
                 convs[0].weight.register_hook(lambda g: reached.append(1))]  # fmt: skip
    ended = next(gen)
    for h in hooks:
        h.remove()
    assert ended.phase == "checking" and ended.step == 1 and reached == []
    model = _drain(gen)
    for key, value in _state(model.net).items():
        assert torch.equal(value, after_one[key]), key


def test_only_steps_off_cuda_are_cut_inside():
    """A CUDA step lasts milliseconds: no hooks there (they cost Python work per module call)."""
    from napari_selfsup_denoise.engine._abort import cut_event

    stop = threading.Event()
    net = torch.nn.Conv2d(1, 1, 3)
    assert cut_event(net, stop) is stop and cut_event(net, None) is None
    if torch.cuda.is_available():
        assert cut_event(net.cuda(), stop) is None
