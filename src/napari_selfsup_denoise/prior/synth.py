"""Procedural training images for the built-in prior: clean scenes plus known noise, no file ever read.

The generator draws dead-leaves images and microscopy-like scenes (nuclei,
filaments, membranes, puncta, textured backgrounds, mixtures of them), in 2D
or 3D, adds out-of-focus haze, uneven illumination and an offset, scales them
to a random dynamic range and adds Gaussian or Poisson-Gaussian noise. Every
number comes from one seeded ``numpy.random.Generator``: the same seed gives
the same images on any machine with the same numpy. Nothing here opens a file,
so the prior cannot have seen the development benchmark or any evaluation image.

>>> sample = generate(0, (128, 128))
>>> sample.noisy.shape, sample.noise.kind in NOISE_KINDS
((128, 128), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._fields import Shape, blur, illumination
from ._scenes import SCENES

# Bump when the images a seed gives change: the prior's metadata records it.
GENERATOR_VERSION = "1"
SCENE_KINDS = tuple(SCENES)
NOISE_KINDS = ("gaussian", "poisson-gaussian")
# How often each scene is drawn when none is asked for (natural-image-like dead leaves and microscopy mixes most).
SCENE_WEIGHTS = {"dead_leaves": 3.0, "nuclei": 2.0, "filaments": 1.0, "membranes": 1.0, "puncta": 0.5,
                 "texture": 1.0, "mixed": 3.0}  # fmt: skip
# Gaussian: sigma as a share of the dynamic range; Poisson-Gaussian: peak photons, gain, read noise in photons.
SIGMA_SHARE = (0.01, 0.3)
PEAK_PHOTONS = (3.0, 2000.0)
GAIN = (0.3, 20.0)
READ_NOISE = (0.0, 4.0)


@dataclass(frozen=True)
class NoiseParams:
    """The noise that was added: ``var(noisy | clean) = a * (clean - offset) + b``.

    Attributes
    ----------
    kind : str
        ``gaussian`` (``a == 0``, ``b == sigma**2``) or ``poisson-gaussian``.
    a : float
        Gain: intensity units per photon (0 for Gaussian noise).
    b : float
        Variance of the signal-independent part (read noise), intensity units squared.
    offset : float
        Black level added to the image (zero photons read as ``offset``).
    peak : float
        Brightest clean value above the offset, in photons for Poisson-Gaussian noise, else in intensity units.
    """

    kind: str
    a: float
    b: float
    offset: float
    peak: float

    def variance(self, clean: np.ndarray) -> np.ndarray:
        """Noise variance at each clean value."""
        return self.a * np.clip(clean - self.offset, 0.0, None) + self.b

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"kind": self.kind, "a": self.a, "b": self.b, "offset": self.offset, "peak": self.peak}


@dataclass(frozen=True)
class SynthImage:
    """One generated training image.

    Attributes
    ----------
    noisy, clean : numpy.ndarray
        float32, the same shape, the same intensity units.
    noise : NoiseParams
        What was added to ``clean`` to give ``noisy``.
    kind : str
        The scene (one of :data:`SCENE_KINDS`).
    """

    noisy: np.ndarray
    clean: np.ndarray
    noise: NoiseParams
    kind: str


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _finish(rng: np.random.Generator, scene: np.ndarray) -> np.ndarray:
    """Out-of-focus haze, uneven illumination, a background and a contrast curve; scaled to a peak of about 1."""
    out: np.ndarray = scene.astype(np.float32)
    if rng.random() < 0.4:  # haze: a blurred copy of the scene from out-of-focus planes
        out = out + rng.uniform(0.1, 1.0) * blur(out, rng.uniform(3.0, 0.1 * min(out.shape) + 3.0))
    if rng.random() < 0.5:
        out = out * illumination(rng, out.shape)
    out = out / max(float(np.percentile(out, 99.9)), 1e-6)
    if rng.random() < 0.3:
        out = np.clip(out, 0.0, None) ** rng.uniform(0.6, 1.5)
    if rng.random() < 0.5:
        out = out + rng.uniform(0.0, 0.3)
    return np.clip(out, 0.0, None).astype(np.float32)


def clean_scene(rng: np.random.Generator, shape: Shape, kind: str | None = None) -> tuple[np.ndarray, str]:
    """A clean scene of ``shape`` (2D or 3D) with values in about ``[0, 1.3]``, and its kind.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``, every edge at least 8.
    kind : str, optional
        One of :data:`SCENE_KINDS`; drawn by :data:`SCENE_WEIGHTS` when omitted.
    """
    if len(shape) not in (2, 3) or min(shape) < 8:
        raise ValueError(f"shape must be 2D or 3D with every edge >= 8, got {shape}")
    if kind is None:
        w = np.array([SCENE_WEIGHTS[k] for k in SCENE_KINDS])
        kind = SCENE_KINDS[int(rng.choice(len(w), p=w / w.sum()))]
    if kind not in SCENES:
        raise ValueError(f"unknown scene {kind!r}; choose one of {', '.join(SCENE_KINDS)}")
    return _finish(rng, SCENES[kind](rng, tuple(shape))), kind


def add_noise(
    rng: np.random.Generator, scene: np.ndarray, kind: str | None = None
) -> tuple[np.ndarray, np.ndarray, NoiseParams]:
    """Scale a unit scene to a random dynamic range and add noise: ``(noisy, clean, params)``, float32.

    Gaussian: a range of 1 to 10,000 intensity units with sigma 1-30 % of it.
    Poisson-Gaussian: a peak of 3 to 2,000 photons, a gain of 0.3-20 units per
    photon and read noise of 0-4 photons, over a black level.
    """
    kind = kind or NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    if kind == "gaussian":
        span = _log_uniform(rng, 1.0, 1e4)
        offset = span * rng.uniform(-0.5, 1.0) if rng.random() < 0.5 else 0.0
        sigma = span * _log_uniform(rng, *SIGMA_SHARE)
        clean = (offset + span * scene).astype(np.float64)
        noisy = clean + rng.normal(0.0, sigma, scene.shape)
        params = NoiseParams(kind, 0.0, sigma**2, offset, span)
    elif kind == "poisson-gaussian":
        peak, gain = _log_uniform(rng, *PEAK_PHOTONS), _log_uniform(rng, *GAIN)
        read = rng.uniform(*READ_NOISE)
        offset = gain * rng.uniform(0.0, 100.0) if rng.random() < 0.5 else 0.0
        photons = peak * scene.astype(np.float64)
        clean = offset + gain * photons
        noisy = offset + gain * (rng.poisson(photons) + rng.normal(0.0, read, scene.shape))
        params = NoiseParams(kind, gain, (gain * read) ** 2, offset, peak)
    else:
        raise ValueError(f"unknown noise {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    return noisy.astype(np.float32), clean.astype(np.float32), params


def generate(
    seed: int | np.random.Generator,
    shape: Shape = (256, 256),
    kind: str | None = None,
    noise: str | None = None,
) -> SynthImage:
    """One noisy / clean training pair.

    Parameters
    ----------
    seed : int or numpy.random.Generator
        A seed (the same seed gives the same image) or a generator to draw from.
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    kind : str, optional
        Scene (one of :data:`SCENE_KINDS`); random when omitted.
    noise : str, optional
        ``gaussian`` or ``poisson-gaussian``; random when omitted.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    scene, kind = clean_scene(rng, shape, kind)
    noisy, clean, params = add_noise(rng, scene, noise)
    return SynthImage(noisy, clean, params, kind)
