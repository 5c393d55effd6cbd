"""The self-check: passes a good seeded run, trips on broken models and on an image at another intensity scale;
chooses the blind-spot output with the smaller estimated error; predicts each crop once."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_selfsup_denoise import load_model, train
from napari_selfsup_denoise.config import PredictConfig
from napari_selfsup_denoise.engine import _check_figures as fig
from napari_selfsup_denoise.engine import checks
from napari_selfsup_denoise.engine._training import choose_patch
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import PatchSampler
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.predict import predict
from napari_selfsup_denoise.metrics import psnr


@pytest.fixture(scope="module")
def case() -> tuple[np.ndarray, np.ndarray]:
    """Clean smooth blobs (20-220) and a seeded copy with Gaussian noise sigma 20."""
    rng = np.random.default_rng(0)
    clean = ndi.gaussian_filter(rng.random((192, 128)), 4)  # tall enough for a held-out band below 96-px patches
    clean = (clean - clean.min()) / np.ptp(clean) * 200 + 20
    return clean.astype(np.float32), (clean + rng.normal(0, 20, clean.shape)).astype(np.float32)


@pytest.fixture(scope="module")
def blobs(case) -> np.ndarray:
    """The noisy blobs."""
    return case[1]


def _train(noisy: np.ndarray, algorithm: str) -> Model:
    common = {"max_steps": 100, "max_seconds": None, "base_channels": 8, "depth": 2, "patch_size": 32}
    return train(noisy, axes="YX", algorithm=algorithm, precision="fp32", seed=0, **common)


@pytest.fixture(scope="module")
def blind(blobs) -> Model:
    return _train(blobs, "blindspot")


@pytest.fixture(scope="module")
def n2v(blobs) -> Model:
    return _train(blobs, "n2v")


def _sampler(model: Model, noisy: np.ndarray) -> PatchSampler:
    canon = canonical(noisy, model.axes)
    patch = choose_patch(model.config, canon.shape[3:], model.ndim, model.multiple)
    return PatchSampler(canon, model.norm, patch, np.random.default_rng(0), model.config.val_fraction, False)


def _random_copy(model: Model, noisy: np.ndarray) -> Model:
    """The same architecture with fresh random weights (and, for blind-spot, a freshly started noise model)."""
    torch.manual_seed(1)
    method = get_method(model.config)
    net = method.build(model.ndim, model.channels)
    method.prepare(net, canonical(noisy, model.axes), model.norm)
    return Model(net.eval(), model.config, model.axes, model.ndim, model.channels, model.norm, method=method)


@pytest.mark.parametrize("which", ["blind", "n2v"])
def test_a_good_seeded_run_passes_on_held_out_pixels(which, request, blobs):
    model = request.getfixturevalue(which)
    check = checks.check_training(model, _sampler(model, blobs))
    assert check.passed, check.verdict
    assert check.held_out and check.pixels >= 1000
    assert check.stage == "training" and check.suspect == "" and check.fallback == ""


def test_noise_model_at_ten_times_the_truth_makes_the_posterior_suspect(blind, blobs):
    noise = blind.net.noise
    with torch.no_grad():
        noise.log_var += math.log(10.0)
    try:
        check = checks.check_training(blind, _sampler(blind, blobs))
    finally:
        with torch.no_grad():
            noise.log_var -= math.log(10.0)
    assert not check.passed
    assert check.suspect == "posterior" and check.fallback == "prior"
    failed = {f.name for f in check.figures if not f.passed}
    assert {"calibration", "noise_fit"} <= failed
    assert "prior" in check.verdict and "noise" in check.verdict


@pytest.mark.parametrize("which", ["blind", "n2v"])
def test_random_weights_make_the_model_suspect(which, request, blobs):
    model = _random_copy(request.getfixturevalue(which), blobs)
    check = checks.check_training(model, _sampler(model, blobs))
    assert not check.passed
    assert check.suspect == "model" and check.fallback == ""
    assert "retrain" in check.advice


def test_a_collapsed_mean_is_flagged_and_not_returned_silently(blind, case):
    """Issue 9's collapse: a network whose mean is off (here by about 3 noise sd everywhere), worse than the input.

    The training check fails on the prior mean's residual, and denoising an image with such a model warns and
    marks the result suspect (the CLI then exits 4 unless --accept-suspect; tests/test_cli_checks.py).
    """
    clean, noisy = case
    bias = blind.net.fuse[-1].bias  # channels: the means first, then the log-variances
    shift = 3 * 20 / float(blind.norm.scale[0])  # 3 noise sd (sigma 20) in normalised units
    with torch.no_grad():
        bias[0] += shift
    try:
        check = checks.check_training(blind, _sampler(blind, noisy))
        with pytest.warns(checks.SuspectResultWarning):
            out = blind.denoise(noisy, "YX")
        decision = blind.last_check
    finally:
        with torch.no_grad():
            bias[0] -= shift
    assert psnr(out, clean, 200) < psnr(noisy, clean, 200)  # the result really is worse than the input
    assert not check.passed and check.suspect == "model"
    assert "prior_residual" in {f.name for f in check.figures if not f.passed}
    assert decision is not None and decision.suspect


def test_round_trip_through_json(blind, blobs):
    check = checks.check_training(blind, _sampler(blind, blobs))
    back = checks.SelfCheck.from_dict(check.to_dict())
    assert back.passed == check.passed and back.verdict == check.verdict
    assert [f.name for f in back.figures] == [f.name for f in check.figures]
    assert all(abs(a.value - b.value) < 1e-3 for a, b in zip(back.figures, check.figures))


def test_an_image_at_ten_times_the_intensity_is_flagged(blind, blobs):
    same = checks.check_image(blind, blobs)
    assert same.passed, same.verdict
    assert same.stage == "image" and same.pixels > 0
    scaled = checks.check_image(blind, blobs * 10)
    assert not scaled.passed and scaled.suspect == "input"
    assert "intensity" in scaled.verdict and "retrain" in scaled.advice


def test_a_figure_outside_its_range_fails_and_nan_fails():
    assert not checks.Figure("calibration", float("nan"), 0.5, 2.0, "posterior").passed
    good = checks.Figure("calibration", 1.0, 0.5, 2.0, "posterior")
    bad = checks.Figure("prior_residual", 3.0, 0.8, 1.3, "prior")
    verdict = checks.verdict([good, bad], "training", 100, True)
    assert verdict.suspect == "model" and "prior_residual 3.00" in verdict.verdict


def test_training_stores_its_check_in_the_summary_and_the_model_file(blind, tmp_path):
    from napari_selfsup_denoise import load_model

    assert blind.summary["self_check"]["passed"] is True
    assert blind.check is not None and blind.check.held_out and blind.check.stage == "training"
    loaded = load_model(blind.save(tmp_path / "m.sdmodel"))
    assert loaded.check is not None and loaded.check.to_dict() == blind.check.to_dict()


def test_the_api_warns_and_returns_the_prior_mean_when_the_posterior_is_suspect(blind, blobs):
    noise = blind.net.noise
    with torch.no_grad():
        noise.log_var += math.log(10.0)
    saved = blind.summary["self_check"]
    try:
        blind.summary["self_check"] = checks.check_training(blind, _sampler(blind, blobs)).to_dict()
        with pytest.warns(checks.SuspectResultWarning, match="prior mean"):
            out = blind.denoise(blobs)
        prior = blind.denoise(blobs, output="prior", check=False)
    finally:
        blind.summary["self_check"] = saved
        with torch.no_grad():
            noise.log_var -= math.log(10.0)
    np.testing.assert_array_equal(out, prior)
    assert blind.last_check.output == "prior" and blind.last_check.fell_back and not blind.last_check.suspect


def test_the_api_warns_on_an_image_at_another_intensity_scale(n2v, blobs):
    with pytest.warns(checks.SuspectResultWarning, match="retrain"):
        n2v.denoise(blobs * 10)
    assert n2v.last_check.suspect and n2v.last_check.image.suspect == "input"


# The output choice of a blind-spot model (engine/_check_choice.py) on a trained model


@contextlib.contextmanager
def _widen_prior(model: Model, gain: float) -> Iterator[None]:
    """Multiply the network's prior variance by ``gain`` (the bias of its log-variance outputs), then restore it."""
    bias = model.net.fuse[-1].bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias[model.channels :] += math.log(gain)
    try:
        yield
    finally:
        with torch.no_grad():
            bias.copy_(saved)


def test_the_posterior_is_kept_when_it_is_better(blind, case):
    clean, noisy = case
    post = blind.denoise(noisy, check=False)
    prior = blind.denoise(noisy, output="prior", check=False)
    assert psnr(post, clean, 255) > psnr(prior, clean, 255)  # what makes this case meaningful
    choice = blind.check.choice
    assert choice is not None and choice.output == "posterior" and choice.held_out and choice.pixels > 1000
    np.testing.assert_array_equal(blind.denoise(noisy), post)
    assert blind.last_check.output == "posterior" and not blind.last_check.chose_prior


def test_a_posterior_worse_than_the_prior_mean_is_replaced_by_the_prior_mean(blind, case):
    """Fails on the code before the choice: the self-check passed and the worse posterior was returned."""
    clean, noisy = case
    saved = blind.summary["self_check"]
    try:
        with _widen_prior(blind, 5.0):
            blind.summary["self_check"] = checks.check_training(blind, _sampler(blind, noisy)).to_dict()
            post = blind.denoise(noisy, check=False)
            prior = blind.denoise(noisy, output="prior", check=False)
            out = blind.denoise(noisy)
    finally:
        blind.summary["self_check"] = saved
    assert psnr(post, clean, 255) < psnr(prior, clean, 255) - 0.5
    decision = blind.last_check
    assert decision.trained.passed and not decision.fell_back, "the self-check alone should not catch this"
    assert decision.output == "prior" and decision.chose_prior
    np.testing.assert_array_equal(out, prior)
    assert "returns the prior mean" in decision.trained.line()
    assert decision.messages() == [] and "returns the prior mean" in decision.notes()[-1]  # said, not a warning


def test_the_choice_is_stored_in_the_model_file(blind, tmp_path):
    loaded = load_model(blind.save(tmp_path / "m.sdmodel"))
    assert loaded.check.choice == checks.SelfCheck.from_dict(blind.check.to_dict()).choice
    assert set(blind.summary["self_check"]["choice"]) >= {"output", "posterior_error", "prior_error", "pixels"}


def _two_pass_crops(model: Model, canon, boxes) -> list[dict[str, np.ndarray]]:
    """The crops as the self-check computed them before (a posterior run and a prior run per crop)."""
    out = []
    for box in boxes:
        win, core = fig._context(box, model.margin, tuple(canon.shape[3:]), model.ndim)
        arr = np.asarray(canon[0, 0, :, 0, win[-2], win[-1]], dtype=np.float32)
        region = (slice(None), *core)
        crop = {"y": arr[region]}
        crop["output"] = drain(predict(model, arr, PredictConfig(device="cpu"), axes="CYX", region=region))[region]
        pcfg = PredictConfig(device="cpu", output="prior", uncertainty=True)
        mu, sd = drain(predict(model, arr, pcfg, axes="CYX", region=region))
        crop["prior"], crop["prior_sd"] = mu[region], sd[region]
        res = {k: model.norm.forward(v, channel_axis=0) for k, v in crop.items() if k != "prior_sd"}
        res["var_x"] = (crop["prior_sd"] / float(model.norm.scale[0])) ** 2
        with torch.no_grad():
            res["var_n"] = model.net.noise.variance(torch.from_numpy(res["prior"][None]))[0].numpy()
        out.append(res)
    return out


def test_the_self_check_predicts_each_crop_once_with_the_same_figures(blind, case, monkeypatch):
    canon = canonical(case[1], "YX")
    boxes, _ = fig.held_out_boxes(_sampler(blind, case[1]), 2)
    calls = []
    real = fig.predict
    monkeypatch.setattr(fig, "predict", lambda *a, **k: calls.append(1) or real(*a, **k))
    crops = fig.predicted_crops(blind, canon, boxes, "cpu")
    assert len(calls) == len(boxes)
    before = _two_pass_crops(blind, canon, boxes)
    for new, old in zip(crops, before):
        for key in ("y", "prior", "output", "var_x", "var_n"):
            np.testing.assert_allclose(new[key], old[key], rtol=1e-5, atol=1e-6)
    now, then = checks.figures_for(blind, crops), checks.figures_for(blind, before)
    assert [f.name for f in now] == [f.name for f in then]
    for a, b in zip(now, then):
        assert a.value == pytest.approx(b.value, rel=1e-4, abs=1e-6), a.name
