"""The self-check's calibrated ranges and what a figure outside its range means, in plain words.

The ranges were calibrated on good and deliberately broken runs of the development cases
(docs/benchmarks.md, "The self-check's ranges"): good runs never leave them, collapsed or mis-fitted models do.
"""

from __future__ import annotations

# name: (low, high, part). Parts: "prior"/"output" (the network's mean), "posterior" (needs the noise model).
RANGES: dict[str, tuple[float, float, str]] = {
    "prior_residual": (0.8, 1.35, "prior"),
    "prior_lag1": (-0.6, 0.15, "prior"),
    "calibration": (0.6, 1.6, "posterior"),
    "noise_fit": (0.6, 2.0, "posterior"),
    "residual": (0.6, 1.6, "posterior"),
    "agreement": (0.4, 2.5, "posterior"),
    "n2v_residual": (0.75, 1.45, "output"),
    "residual_lag1": (-0.6, 0.15, "output"),
    "residual_corr": (-0.25, 0.25, "output"),
    "intensity": (1 / 3, 3.0, "input"),
    "intensity_shift": (-3.0, 3.0, "input"),
}
MEANING = {
    "prior_residual": "the network's mean differs from the noisy image by more than the noise",
    "prior_lag1": "image structure is left in the residual (noisy minus the network's mean)",
    "calibration": "the noise model and the network's variance do not explain the data",
    "noise_fit": "the fitted noise level disagrees with a classical estimate from the image",
    "residual": "the residual (noisy minus denoised) is not the size the noise model predicts",
    "agreement": "the posterior and the network's mean disagree more than the fitted noise implies",
    "n2v_residual": "the residual (noisy minus denoised) is not the size of the image's noise",
    "residual_lag1": "image structure is left in the residual (noisy minus denoised)",
    "residual_corr": "the residual (noisy minus denoised) follows the image",
    "intensity": "this image's intensity spread is far from the training image's",
    "intensity_shift": "this image's intensity level is far from the training image's",
}
# Where a figure below its range means something else than one above it.
MEANING_LOW = {
    "prior_residual": (
        "the network's mean is closer to the noisy image than the noise allows: it reproduces part of the noise"
        " (noise correlated between neighbouring pixels, or a fitted noise level too high)"
    ),
}


def meaning(name: str, value: float, low: float) -> str:
    """What a figure outside its range means, for a value below (``value < low``) or above it."""
    return MEANING_LOW[name] if value < low and name in MEANING_LOW else MEANING[name]
