"""Where training starts: the built-in prior by default, random weights on request or as a fallback, or a file."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_selfsup_denoise.api import PriorWarning, train
from napari_selfsup_denoise.config import ConfigError, TrainConfig
from napari_selfsup_denoise.engine.start import InitialWeights, network_state
from napari_selfsup_denoise.prior import PriorUnavailable, load_prior, resolve_start

# 1 step at a learning rate too small to move the weights: what training started from stays visible
STILL = {"algorithm": "blindspot", "axes": "YX", "max_steps": 1, "max_seconds": None, "learning_rate": 1e-9,
         "val_fraction": 0.0}  # fmt: skip


def _distance(model, state: dict[str, torch.Tensor]) -> float:
    own = network_state(model.net.state_dict())
    return max(float((own[k].cpu() - v).abs().max()) for k, v in state.items())


def test_blindspot_starts_from_the_prior_by_default_and_records_it(stand_in_prior, blobs):
    prior = load_prior("blindspot", 2)
    model = train(blobs[1], **STILL)
    assert _distance(model, prior.weights.state) < 1e-6
    start = model.summary["start"]
    assert start["kind"] == "builtin" and start["name"] == "blindspot_2d"
    assert start["commit"] == "0123abcd" and "built-in prior blindspot_2d" in start["detail"]


def test_random_start_is_random(stand_in_prior, blobs):
    prior = load_prior("blindspot", 2)
    model = train(blobs[1], start_from="random", **STILL)
    assert _distance(model, prior.weights.state) > 0.05
    assert model.summary["start"]["kind"] == "random"
    again = train(blobs[1], start_from="random", **STILL)  # same seed: the same random start
    assert _distance(again, network_state(model.net.state_dict())) == 0.0


def test_noise_model_is_fitted_to_the_image_not_taken_from_the_prior(stand_in_prior, blobs):
    model = train(blobs[1], **STILL)
    assert model.summary["start"]["kind"] == "builtin"
    assert float(model.net.noise.log_var.detach().max()) < 1.0  # the stand-in's noise model holds 5.0
    assert model.summary["classical_sigma"] == pytest.approx(0.1, rel=0.25)


def test_missing_weights_say_so_and_train_from_random(no_prior, blobs):
    start = resolve_start(TrainConfig(algorithm="blindspot", axes="YX"), blobs[1].shape)
    detail = start.source["detail"]
    assert start.state is None and start.source["fallback"]
    assert "the built-in prior is not installed" in detail and "random weights" in detail and "make prior" in detail
    with pytest.warns(PriorWarning, match="not installed"):
        model = train(blobs[1], **{**STILL, "max_steps": 2})
    assert model.summary["start"]["kind"] == "random"
    assert np.isfinite(model.denoise(blobs[1], check=False)).all()
    with pytest.raises(PriorUnavailable, match="not installed"):
        load_prior("blindspot", 2)


def test_algorithms_without_a_prior_start_from_random_and_say_so(stand_in_prior, blobs):
    start = resolve_start(TrainConfig(algorithm="n2v", axes="YX"), blobs[1].shape)
    assert start.state is None and not start.source.get("fallback")
    assert "no built-in prior for n2v" in start.source["detail"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PriorWarning)  # expected, so not a warning
        model = train(blobs[1], algorithm="n2v", max_steps=1, max_seconds=None, patch_size=32, base_channels=8)
    assert "no built-in prior for n2v" in model.summary["start"]["detail"]


def test_another_network_shape_falls_back_with_the_reason(stand_in_prior, blobs):
    start = resolve_start(TrainConfig(algorithm="blindspot", axes="YX", depth=3), blobs[1].shape)
    assert start.state is None and start.source["fallback"]
    assert "depth 2, 24 base channels" in start.source["detail"] and "depth 3" in start.source["detail"]
    two = np.stack([blobs[1], blobs[1]])
    start = resolve_start(TrainConfig(algorithm="blindspot", axes="CYX"), two.shape)
    assert start.state is None and "1-channel images and this image has 2" in start.source["detail"]


def test_fine_tune_a_model_file(stand_in_prior, blobs, tmp_path):
    first = train(blobs[1], start_from="random", **{**STILL, "learning_rate": 1e-3, "max_steps": 3})
    path = first.save(tmp_path / "colleague.sdmodel")
    model = train(blobs[1], start_from=str(path), **STILL)
    assert _distance(model, network_state(first.net.state_dict())) < 1e-6
    assert model.summary["start"] == {"kind": "file", "path": str(path.resolve()),
                                      "detail": f"the model file {path} (trained 3 steps)"}  # fmt: skip
    with pytest.raises(ConfigError, match="same algorithm"):
        resolve_start(TrainConfig(algorithm="n2v", axes="YX", start_from=str(path)), blobs[1].shape)
    with pytest.raises(ConfigError, match="depth 2, 24 base channels"):
        resolve_start(TrainConfig(algorithm="blindspot", axes="YX", depth=1, start_from=str(path)), blobs[1].shape)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_start(TrainConfig(algorithm="blindspot", axes="YX", start_from=str(tmp_path / "no")), (64, 64))


def test_initial_weights_refuse_another_network():
    from napari_selfsup_denoise.engine.nets.blindspot import BlindSpotNet

    small, big = BlindSpotNet(2, 1, 1, 8), BlindSpotNet(2, 1, 1, 16)
    weights = InitialWeights(network_state(small.state_dict()))
    assert weights.mismatch(small) == ""
    assert "another shape" in weights.mismatch(big)
    with pytest.raises(ValueError, match="do not fit"):
        weights.load_into(big)


def test_start_from_is_validated_and_saved():
    assert TrainConfig(start_from=" Random ").start_from == "random"
    assert TrainConfig().start_from == "builtin"
    with pytest.raises(ConfigError, match="start_from"):
        TrainConfig(start_from="  ")
