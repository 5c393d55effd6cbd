"""Zero-shot denoising: the prior frozen, a noise model fitted to the image, the self-check as for any result."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfsup_denoise import denoise
from napari_selfsup_denoise.engine.checks import SuspectResultWarning
from napari_selfsup_denoise.engine.data import DataError
from napari_selfsup_denoise.engine.start import network_state
from napari_selfsup_denoise.prior import PriorUnavailable, load_prior, zero_shot_model


def test_zero_shot_model_is_the_frozen_prior_with_this_images_noise(stand_in_prior, blobs):
    model = zero_shot_model(blobs[1] * 50 + 7, "YX")
    prior = load_prior("blindspot", 2)
    own = network_state(model.net.state_dict())
    assert all(bool((own[k].cpu() == v).all()) for k, v in prior.weights.state.items())
    assert model.summary["noise_model"] == "gaussian"
    assert model.summary["noise_sigma"] == pytest.approx(5.0, rel=0.2)  # sigma 0.1 x 50, at the classical estimate
    assert model.summary["noise_sigma"] == model.summary["classical_sigma"]
    assert model.summary["start"]["kind"] == "builtin" and model.summary["start"]["zero_shot"]
    assert model.norm.offset[0] == pytest.approx(float(np.mean(blobs[1] * 50 + 7)), rel=1e-3)


def test_poisson_noise_gets_a_poisson_gaussian_model(stand_in_prior, blobs):
    rng = np.random.default_rng(5)
    counts = (rng.poisson(blobs[0] * 40) + rng.normal(0, 1, blobs[0].shape)).astype(np.float32)
    assert zero_shot_model(counts, "YX").summary["noise_model"] == "poisson-gaussian"
    assert zero_shot_model(counts, "YX", noise_model="known:2").summary["noise_sigma"] == pytest.approx(2.0)


def test_a_failed_self_check_is_said(stand_in_prior, blobs):
    # the stand-in prior is untrained: its mean is far from the image, and the check must say so
    with pytest.warns(SuspectResultWarning, match="self-check"):
        out = denoise(blobs[1], axes="YX")
    assert out.shape == blobs[1].shape and out.dtype == np.float32


def test_missing_prior_is_a_clear_error(no_prior, blobs):
    with pytest.raises(PriorUnavailable, match="zero-shot denoising needs the built-in prior.*not installed"):
        denoise(blobs[1])


def test_images_it_cannot_take_are_refused(stand_in_prior, blobs):
    with pytest.raises(DataError, match="1-channel images and this one has 2 channels"):
        zero_shot_model(np.stack([blobs[1], blobs[1]]), "CYX")
    with pytest.raises(DataError, match="too small"):
        zero_shot_model(blobs[1][:8, :8], "YX")
    bad = blobs[1].copy()
    bad[3, 3] = np.nan
    with pytest.raises(DataError):
        zero_shot_model(bad, "YX")


def test_3d_images_use_the_3d_prior_and_are_told_what_to_do_without_it(stand_in_prior, noisy_3d):
    from napari_selfsup_denoise.config import TrainConfig
    from napari_selfsup_denoise.prior import builtin, resolve_start

    model = zero_shot_model(noisy_3d, "ZYX")
    assert model.ndim == 3 and model.summary["start"]["name"] == "blindspot_3d"
    assert model.denoise(noisy_3d, "ZYX", check=False).shape == noisy_3d.shape
    start = resolve_start(TrainConfig(algorithm="blindspot", axes="ZYX"), noisy_3d.shape)
    assert start.state is not None and start.source["name"] == "blindspot_3d"
    (stand_in_prior.parent / "blindspot_3d.sdmodel").unlink()  # the package without its 3D weights
    builtin.load_prior.cache_clear()
    with pytest.raises(PriorUnavailable, match="blindspot_3d.sdmodel is missing.*Z axis as T"):
        zero_shot_model(noisy_3d, "ZYX")
    start = resolve_start(TrainConfig(algorithm="blindspot", axes="ZYX"), noisy_3d.shape)
    assert start.state is None and start.source.get("fallback") and "not installed" in start.source["detail"]
    assert zero_shot_model(noisy_3d, "TYX").ndim == 2  # plane by plane with the 2D prior
