"""The blind-spot output choice: the posterior or the prior mean, whichever has the smaller estimated error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_selfsup_denoise import train
from napari_selfsup_denoise.engine import _check_figures as fig
from napari_selfsup_denoise.engine._check_choice import choose_output, estimated_errors
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.noise import FLOOR


def _crops(
    rng: np.random.Generator, poisson: bool, prior_var_gain: float, prior_sd: float = 0.2
) -> tuple[list[dict], np.ndarray]:
    """Synthetic crops and their clean signal.

    The prior mean is off by N(0, prior_sd**2), the noise model is the true one, and the prior
    variance is ``prior_var_gain`` times the prior mean's true error.
    """
    x = ndi.gaussian_filter(rng.random((2, 1, 256, 256)), (0, 0, 3, 3)) * 20 + 2
    y = rng.poisson(x) + rng.normal(0, 1.5, x.shape) if poisson else x + rng.normal(0, 1.0, x.shape)
    var_n = x + 2.25 if poisson else np.ones_like(x)
    mu = x + rng.normal(0, prior_sd, x.shape)
    crops = [{"y": y[k], "prior": mu[k], "var_x": np.full_like(x[k], prior_sd**2 * prior_var_gain), "var_n": var_n[k]}
             for k in range(2)]  # fmt: skip
    return crops, x


@pytest.mark.parametrize("poisson", [False, True])
@pytest.mark.parametrize("gain", [1.0, 30.0])
def test_the_estimated_errors_match_the_true_errors(poisson, gain):
    crops, x = _crops(np.random.default_rng(0), poisson, gain)
    post_est, prior_est, _, noise = estimated_errors(crops)
    mu = np.stack([c["prior"] for c in crops])
    w = np.stack([c["var_x"] / (c["var_x"] + c["var_n"]) for c in crops])
    post = mu + w * (np.stack([c["y"] for c in crops]) - mu)
    true_post, true_prior = float(np.mean((post - x) ** 2)), float(np.mean((mu - x) ** 2))
    # the estimate's standard error is ~ sqrt(2 / n) of the noise variance: 0.003 at 131,072 pixels
    assert abs(post_est - true_post) < 0.015 * noise
    assert abs(prior_est - true_prior) < 0.015 * noise


def test_a_too_wide_prior_makes_the_prior_mean_the_choice_and_a_right_one_the_posterior():
    rng = np.random.default_rng(1)
    right = choose_output(_crops(rng, True, 1.0, prior_sd=2.0)[0], True)
    assert right.output == "posterior" and right.posterior_error < right.prior_error - 10 * right.difference_se
    wide = choose_output(_crops(rng, True, 30.0, prior_sd=2.0)[0], True)
    assert wide.output == "prior" and wide.prior_error < wide.posterior_error and wide.gain_db > 1
    assert "returns the prior mean" in wide.phrase() and "returns the posterior mean" in right.phrase()


def _drifted(rng: np.random.Generator, n: int = 2) -> tuple[list[dict], np.ndarray]:
    """Gaussian noise of variance 1 learned at 0.8 (its floor), a good prior mean, a prior variance leaning to y.

    The posterior weight is 0.3: its true error 0.3**2 + 0.7**2 * 0.1 = 0.139 against the prior mean's 0.1
    (1.4 dB worse), but with the learned 0.8 as ``v`` its estimate is lower by 2 * 0.3 * 0.2 = 0.12.
    """
    x = ndi.gaussian_filter(rng.random((n, 1, 256, 256)), (0, 0, 3, 3)) * 20
    y, mu = x + rng.normal(0, 1.0, x.shape), x + rng.normal(0, 0.1**0.5, x.shape)
    var_x = np.full_like(x, 0.3 / 0.7 * 0.8)
    crops = [{"y": y[k], "prior": mu[k], "var_x": var_x[k], "var_n": np.full_like(x[k], 0.8),
              "var_c": np.ones_like(x[k])} for k in range(n)]  # fmt: skip
    return crops, x


def test_a_noise_model_drifted_to_its_floor_does_not_choose_the_worse_posterior():
    """Issue 9: at batch 16 x 33 steps from random weights (nuclei_pg20) the learned noise ended on its floor and
    the posterior (28.03 dB) was returned, estimated 0.255 against the prior mean's 0.326, where the prior mean
    gave 29.26 dB. The estimate takes the noise variance from the classical estimate (``var_c``), not the fit.
    """
    crops, x = _drifted(np.random.default_rng(3))
    choice = choose_output(crops, True)
    assert choice.output == "prior"
    assert choice.posterior_error == pytest.approx(0.139, abs=0.01)
    assert choice.prior_error == pytest.approx(0.1, abs=0.01)
    fitted = choose_output([{k: v for k, v in c.items() if k != "var_c"} for c in crops], True)
    assert fitted.output == "posterior", "with the drifted fit as v the worse posterior looks better"


def test_the_crops_carry_the_classical_noise_variance_not_the_drifted_fit(camera_128):
    """The self-check's crops give the choice the noise variance of the classical estimate made before training."""
    tiny = dict(algorithm="blindspot", base_channels=8, depth=1, patch_size=32, start_from="random", seed=0)
    model = train(camera_128[1], axes="YX", max_steps=2, max_seconds=None, **tiny)
    noise = model.net.noise
    with torch.no_grad():
        noise.log_var.fill_(-20.0)
    noise.project()  # drifted down to its floor
    canon = canonical(camera_128[1], "YX")
    crops = fig.predicted_crops(model, canon, fig.image_boxes(tuple(canon.shape), 2), "cpu")
    classical = float(noise.classical[1, 0])
    for c in crops:
        np.testing.assert_allclose(c["var_c"], classical, rtol=1e-6)
        np.testing.assert_allclose(c["var_n"], FLOOR * classical, rtol=1e-5)
