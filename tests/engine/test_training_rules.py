"""The training loop's rules: per-group gradient clipping and the warm-up share."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine._training import WARMUP_MIN_STEPS, RunState, clip_gradients, lr_at, warmup_share


def _grads(params: list[torch.nn.Parameter], values: list[float]) -> None:
    for p, v in zip(params, values):
        p.grad = torch.full_like(p, v)


def test_a_spike_in_one_group_does_not_shrink_the_other_groups_step():
    net, noise = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(2))
    st = RunState()
    for _ in range(30):  # a history of ordinary steps
        _grads([net, noise], [1.0, 1.0])
        clip_gradients([[net], [noise]], st)
    _grads([net, noise], [1.0, 1000.0])  # the noise model's gradient spikes
    clip_gradients([[net], [noise]], st)
    assert torch.allclose(net.grad, torch.ones(4)), "the network's gradient was clipped by the noise model's"
    assert float(noise.grad.norm()) == pytest.approx(2 * np.sqrt(2), rel=1e-4), "the spike is clipped at 2x median"


def test_clipping_gives_per_group_exactly_what_clip_grad_norm_gives():
    """The groups are clipped in a few device operations for all of them, with clip_grad_norm_'s numbers."""
    gen = torch.Generator().manual_seed(0)
    shapes = [[(5, 3), (7,), (2, 4, 3, 3)], [(2, 1)]]
    groups = [[torch.nn.Parameter(torch.zeros(s)) for s in g] for g in shapes]
    st = RunState()
    for k in range(25):  # a history of 25 steps, then a step whose gradients are 10x larger: clipped
        for g in groups:
            for p in g:
                p.grad = torch.randn(p.shape, generator=gen) * (10.0 if k == 24 else 1.0)
        refs = [[torch.nn.Parameter(p.detach().clone()) for p in g] for g in groups]
        for g, rg in zip(groups, refs):
            for p, r in zip(g, rg):
                r.grad = p.grad.clone()
        limits = [2.0 * float(np.median(st.norms[i])) if len(st.norms.get(i, ())) >= 20 else 1e6 for i in range(2)]
        norms = clip_gradients(groups, st)
        want = [torch.nn.utils.clip_grad_norm_(r, lim) for r, lim in zip(refs, limits)]
        assert torch.equal(norms, torch.stack(want))
        assert all(torch.equal(p.grad, r.grad) for g, rg in zip(groups, refs) for p, r in zip(g, rg))
    assert all(limit < float(n) for limit, n in zip(limits, norms)), "the last step was clipped"


@pytest.mark.parametrize(
    ("batch", "steps", "share"),
    [
        (None, 4000, 0.05),  # long runs keep warmup_fraction
        (None, 400, WARMUP_MIN_STEPS / 400),  # a minute on the CPU: at least WARMUP_MIN_STEPS steps
        (None, 100, 0.25),  # never more than a quarter of the budget
        (64, 4000, 4 * WARMUP_MIN_STEPS / 4000),  # batch 64: the rate is 4x the table's, so 4x the steps
    ],
)
def test_the_warm_up_lasts_at_least_the_minimum_steps_times_the_rate_gain(batch, steps, share):
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", batch_size=batch, max_steps=steps), ndim=2)
    assert warmup_share(cfg, steps) == pytest.approx(share)


@pytest.mark.parametrize("algorithm", ["n2v", "n2v2", "structn2v"])
def test_the_n2v_family_warms_up_for_the_minimum_steps_too(algorithm):
    cfg = resolve_defaults(TrainConfig(algorithm=algorithm, max_steps=400), ndim=2)
    assert warmup_share(cfg, 400) == pytest.approx(WARMUP_MIN_STEPS / 400)  # the old rule: 0.05 (20 steps)
    assert warmup_share(cfg, 60) == pytest.approx(0.25)  # at most a quarter (the old rule: 3 steps)
    assert warmup_share(cfg, 4000) == pytest.approx(0.05)  # long runs keep warmup_fraction
    big = resolve_defaults(TrainConfig(algorithm=algorithm, batch_size=64, max_steps=400), ndim=2)  # lr x 2
    assert warmup_share(big, 400) == pytest.approx(2 * WARMUP_MIN_STEPS / 400)


def test_the_rate_ramps_up_over_the_warm_up_then_decays():
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot"), ndim=2)
    w = 0.25
    assert lr_at(cfg, 0.5 * w, w) == pytest.approx(0.5 * cfg.learning_rate)
    assert lr_at(cfg, w, w) == pytest.approx(cfg.learning_rate)
    assert lr_at(cfg, 1.0, w) == pytest.approx(0.05 * cfg.learning_rate)
