"""The end of training stays cheap: after Stop in 3D, a validation and a self-check of a few training steps.

Counted in voxels through the network (the same on any machine and under any
load), in training steps as :mod:`napari_selfsup_denoise.engine.preview_cost` counts them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import _check_budget as budget
from napari_selfsup_denoise.engine import _check_figures as fig
from napari_selfsup_denoise.engine import checks
from napari_selfsup_denoise.engine import train as train_mod
from napari_selfsup_denoise.engine._training import choose_patch
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import Normalisation, PatchSampler, fit_normalisation
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.nets.unet import UNet
from napari_selfsup_denoise.engine.preview_cost import FORWARD_SHARE


@contextlib.contextmanager
def _forward_voxels(kind: type) -> Iterator[list[int]]:
    """Voxels (batch x spatial) of every forward pass of a network of type ``kind``, in order."""
    seen: list[int] = []

    def hook(module: torch.nn.Module, args: tuple) -> None:
        if isinstance(module, kind):
            seen.append(int(args[0].shape[0]) * int(np.prod(args[0].shape[2:])))

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def stack(make_stack) -> np.ndarray:
    """A noisy 3D stack, 32 planes like the plugin's 3D sample, wide enough for a long held-out band."""
    return make_stack((32, 96, 192))


CFG_3D = TrainConfig(algorithm="n2v", axes="ZYX", max_steps=20, max_seconds=None, base_channels=4, seed=0,
                     preview_every_s=1e9)  # fmt: skip


def test_stop_in_3d_ends_with_a_check_of_a_few_steps(stack):
    """Old code: the held-out crop 16 x 32 x 128 was predicted in a 64 x 80 x 176 window (4.6 training steps),
    and the image check's 16 x 64 x 64 crop in a 64 x 112 x 112 window (4.1 steps), after a validation of
    the only candidate (no weights were validated before: it could not change the model returned)."""
    stop = threading.Event()
    gen = train_mod.train(stack, CFG_3D, stop=stop)
    next(gen)
    next(gen)
    stop.set()
    assert next(gen).phase == "checking"  # training has ended; what follows is its end
    with _forward_voxels(UNet) as seen, pytest.raises(StopIteration) as end:
        next(gen)
    model = end.value.value
    step = model.config.batch_size * int(np.prod(model.summary["patch"]))  # voxels of one training step
    assert sum(seen) * FORWARD_SHARE <= budget.CHECK_STEPS * step  # the self-check, and no validation
    assert model.check.held_out and budget.MIN_VOXELS <= model.check.pixels <= 2 * budget.MAX_VOXELS_3D
    with _forward_voxels(UNet) as seen:
        decision = checks.decide(model, stack, "ZYX")  # what denoising starts with
    assert sum(seen) * FORWARD_SHARE <= budget.CHECK_STEPS * step
    assert decision.image.pixels >= budget.MIN_VOXELS


def test_random_3d_weights_still_fail_the_cheaper_check(stack):
    cfg = resolve_defaults(CFG_3D, 3)
    method = get_method(cfg)
    torch.manual_seed(1)
    canon = canonical(stack, "ZYX")
    model = Model(method.build(3, 1).eval(), cfg, "ZYX", 3, 1, fit_normalisation(canon), method=method)
    patch = choose_patch(cfg, canon.shape[3:], 3, model.multiple)
    sampler = PatchSampler(canon, model.norm, patch, np.random.default_rng(0), cfg.val_fraction, False)
    check = checks.check_training(model, sampler)
    assert check.pixels <= 2 * budget.MAX_VOXELS_3D, "the crop should have been cut"
    assert not check.passed and check.suspect == "model"


@pytest.mark.parametrize("algorithm", ["blindspot", "n2v"])
@pytest.mark.parametrize(("shape", "axes"), [((512, 512), "YX"), ((256, 384), "YX"), ((5, 512, 512), "TYX")])
def test_the_2d_default_crops_fit_the_budget_unchanged(algorithm, shape, axes):
    """2D keeps every held-out and image pixel it checked before (the budget binds only in 3D)."""
    cfg = resolve_defaults(TrainConfig(algorithm=algorithm, axes=axes), 2)
    net = get_method(cfg).build(2, 1)
    canon = canonical(np.zeros(shape, np.float32), axes)
    patch = choose_patch(cfg, canon.shape[3:], 2, net.multiple, int(getattr(net, "min_patch", 0)))
    sampler = PatchSampler(canon, Normalisation("meanstd", (0.0,), (1.0,)), patch, np.random.default_rng(0))
    limit = budget.budget_voxels(cfg.batch_size, sampler.patch)
    for boxes in (fig.held_out_boxes(sampler, 2)[0], fig.image_boxes(tuple(canon.shape), 2)):
        assert budget.fit(boxes, 2, net.margin, net.multiple, limit) == boxes


def test_a_step_budget_run_validates_its_last_step_once(monkeypatch):
    """Old code: the last step was validated in the step and again at the end (the same weights, twice)."""
    calls = []
    real = train_mod.validate
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=train_mod.VAL_EVERY, max_seconds=None, patch_size=16,
                      batch_size=2, depth=1, base_channels=4, seed=0)  # fmt: skip
    gen = train_mod.train(img, cfg)
    with pytest.raises(StopIteration) as end:
        while True:
            next(gen)
    assert end.value.value.summary["steps"] == train_mod.VAL_EVERY
    assert len(calls) == 1


@pytest.mark.parametrize(("batch", "patches"), [(2, 8), (4, 16), (8, 16)])
def test_the_validation_batch_is_at_most_four_training_batches(batch, patches):
    """Old code: 16 patches whatever the batch (3D blind-spot, batch 2: 8 training batches after every Stop)."""
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=1, max_seconds=None, patch_size=16, batch_size=batch,
                      depth=1, base_channels=4, seed=0, val_fraction=0.3)  # fmt: skip
    sizes: list[int] = []
    real = train_mod.validate
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train_mod, "validate", lambda *a, **k: sizes.append(a[5] if len(a) > 5 else 16) or real(*a, **k))
        with _forward_voxels(UNet) as seen:
            gen = train_mod.train(img, cfg)
            with pytest.raises(StopIteration):
                while True:
                    next(gen)
    assert sizes == [patches]
    assert seen[1] == patches * 16 * 16  # the forward pass after the step's is the validation's


def test_a_stop_validates_only_to_choose_between_candidates(monkeypatch):
    """Old code: a Stop before any validation validated the only candidate (its loss cannot change the model)."""
    calls = []
    real = train_mod.validate
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)
    cfg = TrainConfig(algorithm="n2v", axes="YX", max_steps=20, max_seconds=None, patch_size=16, batch_size=2,
                      depth=1, base_channels=4, seed=0, val_fraction=0.3)  # fmt: skip

    def stopped_after_two(init: Model | None = None) -> Model:
        calls.clear()
        stop = threading.Event()
        gen = train_mod.train(img, cfg, stop=stop, init=init)
        next(gen)
        next(gen)
        stop.set()
        with pytest.raises(StopIteration) as end:
            while True:
                next(gen)
        return end.value.value

    first = stopped_after_two()
    assert calls == [] and first.summary["steps"] == 2 and first.summary["best_val_loss"] is None
    again = stopped_after_two(init=first)  # its starting weights are validated: a choice to make after Stop
    assert len(calls) == 2 and again.summary["best_val_loss"] is not None


def test_a_3d_n2v_check_reads_half_the_margin_and_gives_the_full_margin_figures(stack, monkeypatch):
    """Old code: the check's 3D N2V windows carried the full margin (24 at the defaults: 155 GFLOP after Stop
    on the 3D sample, where half the margin gives 44 and the same figures)."""
    stop = threading.Event()
    model = train_mod.train(stack, CFG_3D.replace(max_steps=12), stop=stop)
    model = _last(model)
    canon = canonical(stack, "ZYX")
    boxes = checks.budgeted(model, fig.image_boxes(tuple(canon.shape), 3))
    with _forward_voxels(UNet) as narrow:
        crops = fig.predicted_crops(model, canon, boxes, "cpu")
    monkeypatch.setattr(budget, "MARGIN_SHARE_3D", 1.0)
    with _forward_voxels(UNet) as full:
        reference = fig.predicted_crops(model, canon, boxes, "cpu")
    assert sum(narrow) < 0.6 * sum(full)
    got = {f.name: f.value for f in checks.figures_for(model, crops)}
    want = {f.name: f.value for f in checks.figures_for(model, reference)}
    assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 2e-3 for k in want), (got, want)


def _last(gen):
    while True:
        try:
            next(gen)
        except StopIteration as end:
            return end.value
