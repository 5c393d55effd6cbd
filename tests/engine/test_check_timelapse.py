"""On a time-lapse the self-check's noise reference is capped by what frame differences show."""

from __future__ import annotations

import numpy as np

from napari_selfsup_denoise.engine import _check_figures as fig


def _scene(rng: np.random.Generator) -> np.ndarray:
    """A textured (1, 64, 64) scene: fine structure that a classical local noise estimate mistakes for noise."""
    yy, xx = np.mgrid[:64, :64]
    return (np.sin(yy / 1.3) * np.cos(xx / 1.7) + 0.3 * rng.standard_normal((64, 64)).cumsum(1) / 8)[None]


def test_a_static_time_lapse_caps_a_high_classical_estimate_at_the_frame_difference_noise():
    """Old code: the classical estimate alone (here 2x the noise) was the reference; the telomere time-lapse's
    good structN2V result then failed n2v_residual (0.65-0.70) and the command line wrote nothing."""
    rng = np.random.default_rng(0)
    crops = []
    for _ in range(3):
        scene = _scene(rng)
        crops.append(
            {
                "y": scene + 0.5 * rng.standard_normal(scene.shape),
                "y_next": scene + 0.5 * rng.standard_normal(scene.shape),
            }
        )
    high = [np.full_like(c["y"], 2 * 0.25) for c in crops]  # twice the true noise variance 0.25
    capped = fig.temporal_capped(crops, high)
    assert abs(float(np.mean(capped)) / 0.25 - 1) < 0.05


def test_a_moving_scene_or_a_single_image_keeps_the_classical_estimate():
    rng = np.random.default_rng(1)
    scene = _scene(rng)
    moving = [{"y": scene + 0.5 * rng.standard_normal(scene.shape),
               "y_next": np.roll(scene, 3, axis=2) + 0.5 * rng.standard_normal(scene.shape)}]  # fmt: skip
    var = [np.full_like(scene, 0.3)]  # near the truth (0.25): motion only adds to the frame differences
    assert np.array_equal(fig.temporal_capped(moving, var)[0], var[0])
    single = [{"y": moving[0]["y"]}]
    assert fig.temporal_capped(single, var) is var
