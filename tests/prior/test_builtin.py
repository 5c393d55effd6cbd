"""The prior the package ships: it loads from the installed package, denoises at once, and training starts from it."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import denoise, train
from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.metrics import psnr
from napari_selfsup_denoise.prior import available, builtin, load_prior
from napari_selfsup_denoise.prior.synth import clean_scene

GAIN_3D = 5.0  # zero-shot on a generated 3D nuclei stack (sigma 0.1); the shipped 3D prior gives 9.2 dB


@pytest.fixture
def shipped():
    """The prior as installed (no stand-in; whatever an earlier test cached is forgotten)."""
    builtin.load_prior.cache_clear()
    yield load_prior("blindspot", 2)
    builtin.load_prior.cache_clear()


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, np.ndarray]:
    """A seeded 128 x 128 generated scene (nuclei, a seed pre-training does not draw) and a noisy copy (sigma 0.1)."""
    rng = np.random.default_rng(2026_11_26)
    clean, _ = clean_scene(rng, (128, 128), "nuclei")
    return clean, (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)


def test_weights_load_from_the_installed_package(shipped):
    item = resources.files("napari_selfsup_denoise") / "prior" / "weights" / "blindspot_2d.sdmodel"
    assert item.is_file() and item.stat().st_size < 10 * 2**20  # the budget: at most ~10 MB per prior
    assert available() == ["blindspot_2d", "blindspot_3d"]
    assert (shipped.config.depth, shipped.config.base_channels, shipped.channels) == (2, 24, 1)
    net = get_method(resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX"), 2)).build(2, 1)
    assert shipped.weights.mismatch(net) == ""  # the network default blind-spot training builds
    assert shipped.weights.source["kind"] == "builtin" and shipped.weights.source["commit"]


def test_zero_shot_beats_the_noisy_input_by_5_db(shipped, scene):
    clean, noisy = scene
    out = denoise(noisy, axes="YX")
    gain = psnr(out, clean, 1.0) - psnr(noisy, clean, 1.0)
    assert gain >= 5.0, f"zero-shot gained only {gain:.2f} dB"


def test_fine_tuning_starts_from_the_prior(shipped, scene):
    losses = {}
    for start in ("builtin", "random"):
        first: list[float] = []
        model = train(scene[1], algorithm="blindspot", axes="YX", max_steps=1, max_seconds=None, start_from=start,
                      val_fraction=0.0, on_progress=lambda ev, first=first: first.append(ev.loss))  # fmt: skip
        assert model.summary["start"]["kind"] == start
        losses[start] = first[0]
    assert losses["builtin"] < losses["random"] - 0.05, losses


def test_a_short_hot_run_cannot_lose_the_prior(shipped):
    """The starting weights are a validation candidate (issue 9: batch 64 at a 4x rate for 9 steps ruined the prior)."""
    rng = np.random.default_rng(7)
    clean, _ = clean_scene(rng, (224, 128), "nuclei")  # tall enough for a validation band below 96-pixel patches
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    model = train(noisy, algorithm="blindspot", axes="YX", max_steps=3, max_seconds=None, learning_rate=0.5, seed=0)
    assert "did not improve on the starting weights" in model.summary["message"]
    state = model.net.state_dict()
    for key, value in shipped.weights.state.items():  # type: ignore[union-attr]
        assert torch.equal(state[key].cpu(), value), key


def test_the_3d_prior_loads_denoises_a_stack_at_once_and_starts_3d_training():
    builtin.load_prior.cache_clear()
    prior = load_prior("blindspot", 3)
    item = resources.files("napari_selfsup_denoise") / "prior" / "weights" / "blindspot_3d.sdmodel"
    assert item.is_file() and item.stat().st_size < 10 * 2**20
    assert (prior.config.depth, prior.config.base_channels, prior.channels) == (1, 16, 1)
    net = get_method(resolve_defaults(TrainConfig(algorithm="blindspot", axes="ZYX"), 3)).build(3, 1)
    assert prior.weights.mismatch(net) == ""  # the network default 3D blind-spot training builds
    rng = np.random.default_rng(2026_11_27)
    clean, _ = clean_scene(rng, (24, 64, 64), "nuclei")
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    gain = psnr(denoise(noisy, axes="ZYX"), clean, 1.0) - psnr(noisy, clean, 1.0)
    assert gain >= GAIN_3D, f"3D zero-shot gained only {gain:.2f} dB"
    losses = {}
    for start in ("builtin", "random"):
        first: list[float] = []
        train(noisy, algorithm="blindspot", axes="ZYX", max_steps=1, max_seconds=None, start_from=start,
              val_fraction=0.0, on_progress=lambda ev, first=first: first.append(ev.loss))  # fmt: skip
        losses[start] = first[0]
    assert losses["builtin"] < losses["random"] - 0.05, losses
    builtin.load_prior.cache_clear()
