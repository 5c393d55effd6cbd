"""``napari_selfsup_denoise.train`` warns when the model's own self-check at the end of training failed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_selfsup_denoise import train
from napari_selfsup_denoise.engine import checks
from napari_selfsup_denoise.engine.checks import SuspectResultWarning

TINY = {"algorithm": "n2v", "axes": "YX", "max_steps": 3, "max_seconds": None, "patch_size": 32, "batch_size": 4,
        "base_channels": 8, "depth": 1}  # fmt: skip


@pytest.fixture
def noise() -> np.ndarray:
    """Pure Gaussian noise: three N2V steps pass the self-check on it (the residual is the noise)."""
    return np.random.default_rng(0).normal(100, 10, (64, 64)).astype(np.float32)


def _failing(model, sampler):
    bad = checks.Figure("n2v_residual", 3.0, *checks.RANGES["n2v_residual"])
    return checks.verdict([bad], "training", 1000, True)


def test_train_warns_when_the_models_own_check_failed(noise, monkeypatch):
    monkeypatch.setattr("napari_selfsup_denoise.engine.train.check_training", _failing)
    with pytest.warns(SuspectResultWarning) as caught:  # main: no warning at all
        model = train(noise, **TINY)
    assert model.check is not None and not model.check.passed
    text = [str(w.message) for w in caught if w.category is SuspectResultWarning]
    assert text == [f"self-check (training): {model.check.verdict}. What to try: {model.check.advice}."]
    assert "n2v_residual 3.00" in text[0] and "retrain" in text[0]
    assert caught[0].filename == __file__  # pointed at the caller's line


def test_train_is_quiet_when_the_check_passed(noise):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SuspectResultWarning)
        model = train(noise, **TINY)
    assert model.check is not None and model.check.passed
