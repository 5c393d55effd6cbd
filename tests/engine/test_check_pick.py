"""After a Stop, a blind-spot run chooses its weights on the self-check's crops instead of a validation batch.

Counted (validations, crop predictions), not timed: in 3D the validation batch cost 1.4 training steps
after every Stop of a run from the built-in prior, on top of the self-check (issue 10 item 10).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine import _check_pick as pick
from napari_selfsup_denoise.engine import checks
from napari_selfsup_denoise.engine import train as train_mod
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.noise import gaussian_nll
from napari_selfsup_denoise.engine.start import InitialWeights, network_state

CFG = TrainConfig(algorithm="blindspot", axes="ZYX", max_steps=20, max_seconds=None, base_channels=4, seed=0,
                  preview_every_s=1e9, val_fraction=0.3)  # fmt: skip


@pytest.fixture(scope="module")
def stack(make_stack) -> np.ndarray:
    return make_stack((32, 96, 96))


def _run(gen: Any) -> Model:
    with pytest.raises(StopIteration) as end:
        while True:
            next(gen)
    return end.value.value


@pytest.fixture(scope="module")
def start(stack: np.ndarray) -> InitialWeights:
    """Weights to start from (as from the built-in prior): the run validates them before its first step."""
    return InitialWeights(network_state(_run(train_mod.train(stack, CFG.replace(max_steps=1))).net.state_dict()), {})


@pytest.fixture
def predicted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list, dict[str, torch.Tensor]]]:
    """Every crop prediction of the end-of-training choice: (crops, the network's weights then)."""
    seen: list[tuple[list, dict[str, torch.Tensor]]] = []
    real = pick.training_crops

    def crops(model: Model, sampler: Any) -> tuple[list, bool]:
        out = real(model, sampler)
        seen.append((out[0], {k: v.clone() for k, v in network_state(model.net.state_dict()).items()}))
        return out

    monkeypatch.setattr(pick, "training_crops", crops)
    return seen


def _stopped_after(stack: np.ndarray, start: InitialWeights, steps: int) -> Model:
    stop = threading.Event()
    gen = train_mod.train(stack, CFG, stop=stop, start=start)
    for _ in range(steps):
        next(gen)
    stop.set()
    assert next(gen).phase == "checking"
    return _run(gen)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(v, b[k]) for k, v in a.items())


def test_a_stop_chooses_on_two_self_checks_without_a_validation(stack, start, predicted, monkeypatch):
    """Old code: after the Stop, the validation batch (the current weights), then one self-check."""
    validations = []
    real = train_mod.validate
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: validations.append(1) or real(*a, **k))
    model = _stopped_after(stack, start, 2)
    assert validations == [1]  # the start's, before the first step; none after the Stop
    assert len(predicted) == 2  # the current weights' crops and the start's: one self-check pass each
    assert sum(_same(w, start.state) for _, w in predicted) == 1
    kept = min(predicted, key=lambda p: (pick.held_out_nll(p[0]), not _same(p[1], start.state)))
    assert _same(network_state(model.net.state_dict()), kept[1])  # the lower held-out loss (a tie: the start)
    assert model.summary["self_check"] == checks.check_crops(model, kept[0], True).to_dict()  # and its own check


@pytest.mark.parametrize("winner", ["current", "start"])
def test_the_summary_says_which_weights_were_kept(stack, start, predicted, monkeypatch, winner):
    monkeypatch.setattr(
        pick, "held_out_nll", lambda c: float(_same(_weights_of(predicted, c), start.state) != (winner == "start"))
    )
    model = _stopped_after(stack, start, 2)
    current = next(w for _, w in predicted if not _same(w, start.state))
    assert _same(network_state(model.net.state_dict()), start.state if winner == "start" else current)
    if winner == "start":
        assert model.summary["best_step"] == 0 and model.summary["best_val_loss"] is not None
        assert "did not improve on the starting weights" in model.summary["message"]
    else:  # chosen on the crops, not on the validation batch
        assert model.summary["best_step"] is None and model.summary["best_val_loss"] is None


def _weights_of(predicted: list, crops: list) -> dict[str, torch.Tensor]:
    return next(w for c, w in predicted if c is crops)


def test_the_held_out_loss_is_the_training_loss():
    rng = np.random.default_rng(0)
    crops = [{k: rng.random((1, 4, 8, 8)).astype(np.float32) + 0.1 for k in ("y", "prior", "var_x", "var_n")}
             for _ in range(2)]  # fmt: skip
    t = {k: torch.from_numpy(np.concatenate([c[k].ravel() for c in crops])) for k in crops[0]}
    assert pick.held_out_nll(crops) == pytest.approx(float(gaussian_nll(t["y"], t["prior"], t["var_x"] + t["var_n"])))


def test_a_2d_run_still_validates_after_a_stop(monkeypatch):
    """In 2D the validation batch is cheap, and the crops chose otherwise 3 times in 36 (docs/benchmarks.md)."""
    validations = []
    real = train_mod.validate
    monkeypatch.setattr(train_mod, "validate", lambda *a, **k: validations.append(1) or real(*a, **k))
    img = ndi.gaussian_filter(np.random.default_rng(0).random((352, 128)), 2) * 500 + 100
    img = (img + np.random.default_rng(1).normal(0, 10, img.shape)).astype(np.float32)
    cfg = CFG.replace(axes="YX")
    first = _run(train_mod.train(img, cfg.replace(max_steps=1)))
    stop = threading.Event()
    gen = train_mod.train(img, cfg, stop=stop, init=first)
    validations.clear()
    next(gen)
    stop.set()
    _run(gen)
    assert len(validations) == 2  # the starting weights', then the current weights' after the Stop
