"""The blind-spot output choice: the posterior or the prior mean, whichever has the smaller estimated error."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_selfsup_denoise.engine._check_choice import choose_output, estimated_errors


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
