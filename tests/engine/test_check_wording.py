"""A failed self-check says which way a figure left its range where the two sides mean different things."""

from __future__ import annotations

from napari_selfsup_denoise.engine._check_result import Figure
from napari_selfsup_denoise.engine.checks import verdict


def _prior_residual(value: float) -> str:
    figure = Figure("prior_residual", value, 0.8, 1.35, "prior")
    return verdict([figure], "training", 1000, True).verdict


def test_a_network_mean_too_close_to_the_noisy_image_is_not_called_too_far():
    low = _prior_residual(0.55)  # the real time-lapse: the mean reproduces part of the noise
    assert "closer to the noisy image than the noise allows" in low
    assert "more than the noise" not in low
    assert "differs from the noisy image by more than the noise" in _prior_residual(1.9)


def test_a_network_mean_too_close_to_the_noisy_image_points_to_structn2v():
    low = verdict([Figure("prior_residual", 0.55, 0.8, 1.35, "prior")], "training", 1000, True)
    assert "structn2v" in low.advice and "correlated" in low.advice
    high = verdict([Figure("prior_residual", 1.9, 0.8, 1.35, "prior")], "training", 1000, True)
    assert "structn2v" not in high.advice


def test_a_failed_structn2v_check_does_not_point_to_the_blind_spot():
    """Old code: structN2V, chosen for correlated noise, was told to 'try the blind-spot algorithm' (the real
    telomere time-lapse, n2v_residual 0.70), the algorithm that learns correlated noise."""
    low = [Figure("n2v_residual", 0.70, 0.75, 1.45, "output")]
    struct = verdict(low, "training", 1000, True, algorithm="structn2v")
    assert not struct.passed and "blind-spot algorithm" not in struct.advice and "structN2V" in struct.advice
    assert "blind-spot algorithm" in verdict(low, "training", 1000, True, algorithm="n2v").advice
