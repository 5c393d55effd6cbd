"""Which output a blind-spot model returns: its posterior mean or its prior mean, judged without the clean image.

Both outputs are affine in the noisy pixel ``y`` with coefficients that do not
depend on ``y`` (the network never sees the pixel it predicts, and the noise
variance is taken at the prior mean): the prior mean is ``mu``, the posterior
mean ``mu + w (y - mu)`` with ``w = var_x / (var_x + var_n)``. For any output
``f = mu + c w (y - mu)`` and noise of zero mean and variance ``v`` that is
independent between pixels (Gaussian, Poisson, or both)::

    E[(f - x)**2] = E[(f - y)**2] - v + 2 c w v

so the error of each output against the clean image ``x`` can be estimated from
the noisy pixels alone (Stein's unbiased risk estimate; exact for Poisson noise
too, because ``f`` is affine in ``y``). ``v`` must be the true noise variance:
a ``v`` off by ``d`` shifts the posterior's estimate against the prior mean's
by ``2 w d``. It is therefore taken from the classical noise estimate made
before training (``var_c``, :meth:`.noise.NoiseModel.reference_variance`, at
the prior mean), not from the learned noise model (``var_n``, which sets ``w``):
the training can drift that one, e.g. down to its floor early in a short run
from random weights, which made the posterior look better than the prior mean
when it was 1.2-4 dB worse (issue 9: ``nuclei_pg20`` at batch 16 x 33 and
64 x 8 steps). The posterior is the default: on pixels the training never saw,
the prior mean is returned instead only when its estimated error is lower by
more than :data:`Z` standard errors of the difference. Early in training the
network's prior variance can be too large, so that the posterior leans too far
towards the noisy pixel and is worse than the prior mean (issue 9:
``nuclei_pg20`` at 170 steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

OUTPUTS = ("posterior", "prior")
Z = 2.0  # standard errors by which the prior mean must win (a one-sided test at about 2 %)
_WORDS = {"posterior": "the posterior mean", "prior": "the prior mean"}


@dataclass(frozen=True)
class OutputChoice:
    """The estimated errors of both outputs of a blind-spot model, and the one returned.

    Attributes
    ----------
    output : str
        ``posterior``, or ``prior`` when its estimated error is clearly the smaller.
    posterior_error, prior_error : float
        Estimated mean squared error against the clean image, as a share of the
        mean noise variance (0.1: ten times below the noise).
    difference_se : float
        Standard error of ``posterior_error - prior_error``.
    pixels : int
        Pixels the estimates were made on.
    held_out : bool
        Whether the training never saw those pixels.
    """

    output: str
    posterior_error: float
    prior_error: float
    difference_se: float
    pixels: int
    held_out: bool

    @property
    def gain_db(self) -> float:
        """How much lower the prior mean's estimated error is than the posterior's, in dB (NaN if not positive)."""
        if self.prior_error <= 0 or self.posterior_error <= 0:
            return math.nan
        return 10.0 * math.log10(self.posterior_error / self.prior_error)

    def phrase(self) -> str:
        """One plain clause: what is returned and why."""
        errors = (
            f"estimated error {self.posterior_error:.3f} (posterior) and {self.prior_error:.3f} (prior mean) "
            f"± {self.difference_se:.3f} of the noise variance"
        )
        if self.output == "prior":
            gain = f"{self.gain_db:.1f} dB" if math.isfinite(self.gain_db) else "clearly"
            return f"returns the prior mean, {gain} better than the posterior ({errors})"
        return f"returns the posterior mean ({errors})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with the self-check in the model's summary)."""
        return {
            "output": self.output,
            "posterior_error": round(self.posterior_error, 5),
            "prior_error": round(self.prior_error, 5),
            "difference_se": round(self.difference_se, 5),
            "pixels": self.pixels,
            "held_out": self.held_out,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputChoice:
        """Inverse of :meth:`to_dict`."""
        out = str(d.get("output", "posterior"))
        post, prior, se = (float(d.get(k, math.nan)) for k in ("posterior_error", "prior_error", "difference_se"))
        return cls(out if out in OUTPUTS else "posterior", post, prior, se, int(d.get("pixels", 0)),
                   bool(d.get("held_out")))  # fmt: skip


def _terms(c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel error estimates of the posterior and the prior mean, and the noise variance ``v`` (float64).

    The posterior's weight ``w`` comes from the learned noise variance (``var_n``: what the output uses),
    ``v`` from the classical estimate (``var_c``; ``var_n`` when a crop has none).
    """
    r2 = (c["y"].astype(np.float64) - c["prior"]) ** 2
    var_n = c["var_n"].astype(np.float64)
    v = c.get("var_c", var_n).astype(np.float64)
    w = c["var_x"] / (c["var_x"] + var_n)
    return (1.0 - w) ** 2 * r2 - v + 2.0 * w * v, r2 - v, v


def estimated_errors(crops: list[dict[str, np.ndarray]]) -> tuple[float, float, float, float]:
    """Estimated mean squared error of the posterior and the prior mean, the difference's standard error, and the
    mean noise variance (normalised units, pooled over crops and channels).

    Parameters
    ----------
    crops : list of dict
        Normalised crops with ``y`` (noisy), ``prior`` (``mu``), ``var_x``, ``var_n`` and ``var_c``
        (:func:`._check_figures.predicted_crops`).
    """
    post, prior, var_n = (np.concatenate([t.ravel() for t in parts]) for parts in zip(*map(_terms, crops)))
    diff = post - prior
    se = float(np.std(diff)) / math.sqrt(max(diff.size, 1))
    return float(np.mean(post)), float(np.mean(prior)), se, float(np.mean(var_n))


def choose_output(crops: list[dict[str, np.ndarray]], held_out: bool) -> OutputChoice:
    """The output of a blind-spot model to return, from its estimated errors on ``crops`` (module docstring)."""
    post, prior, se, noise = estimated_errors(crops)
    output = "prior" if post - prior > Z * se else "posterior"
    noise = max(noise, 1e-30)
    pixels = sum(int(c["y"].size) for c in crops)
    return OutputChoice(output, post / noise, prior / noise, se / noise, pixels, held_out)
