"""Sample data for napari, generated locally (no downloads), with known noise.

Each function returns napari's ``[(data, kwargs, "image")]``; the clean image
travels in the layer metadata (``metadata["clean"]``) so a result can be scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LayerData = list[tuple[np.ndarray, dict[str, Any], str]]


def _nuclei(shape: tuple[int, ...], count: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """Bright textured ellipsoids on a dim background, float32 in [0, 1]."""
    from scipy import ndimage as ndi

    grid = np.indices(shape, dtype=np.float32)
    img = np.zeros(shape, np.float32)
    for _ in range(count):
        centre = [rng.uniform(0, s) for s in shape]
        radii = [radius * rng.uniform(0.7, 1.3) * (0.5 if i < len(shape) - 2 else 1) for i in range(len(shape))]
        d = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
        img = np.maximum(img, np.where(d < 1, rng.uniform(0.5, 1.0), 0.0).astype(np.float32))
    texture = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), 1.5)
    img = ndi.gaussian_filter(img, 1.0) * (1 + 0.6 * texture / (np.abs(texture).max() + 1e-6))
    return np.clip(0.05 + 0.9 * img, 0, 1).astype(np.float32)


def _poisson_gaussian(clean: np.ndarray, photons: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Shot noise at ``photons`` per unit intensity plus Gaussian read noise, as uint16 counts."""
    counts = rng.poisson(clean * photons).astype(np.float32) + rng.normal(100, read, clean.shape)
    return np.clip(counts, 0, 65535).astype(np.uint16)


def noisy_nuclei_2d(seed: int = 0) -> LayerData:
    """A 512 x 512 field of nuclei with Poisson-Gaussian noise (about 20 photons at the brightest)."""
    rng = np.random.default_rng(seed)
    clean = _nuclei((512, 512), 60, 18, rng)
    noisy = _poisson_gaussian(clean, 20, 3, rng)
    meta = {"clean": clean * 20 + 100, "noise": "poisson-gaussian, 20 photons, read sigma 3"}
    return [(noisy, {"name": "nuclei 2D (noisy)", "metadata": meta}, "image")]


def noisy_nuclei_3d(seed: int = 0) -> LayerData:
    """A 32 x 192 x 192 stack of nuclei, 0.5 µm planes at 0.2 µm pixels, Poisson-Gaussian noise."""
    rng = np.random.default_rng(seed)
    clean = _nuclei((32, 192, 192), 40, 16, rng)
    noisy = _poisson_gaussian(clean, 15, 3, rng)
    kw = {
        "name": "nuclei 3D (noisy)",
        "scale": (0.5, 0.2, 0.2),
        "units": ("µm", "µm", "µm"),
        "metadata": {"clean": clean * 15 + 100, "noise": "poisson-gaussian, 15 photons, read sigma 3"},
    }
    return [(noisy, kw, "image")]


def noisy_camera(sigma: float = 25.0, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's ``camera`` (shipped in its wheel) and a copy with Gaussian noise of ``sigma``, both float32.

    The demo, the benchmarks (``camera_g25``) and the napari sample all use this image.
    """
    from skimage import data

    clean = data.camera().astype(np.float32)
    noisy = (clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)).astype(np.float32)
    return clean, noisy


def noisy_natural(seed: int = 0, sigma: float = 25.0) -> LayerData:
    """scikit-image's ``camera`` with additive Gaussian noise of ``sigma`` (see :func:`noisy_camera`)."""
    clean, noisy = noisy_camera(sigma, seed)
    meta = {"clean": clean, "noise": f"gaussian, sigma {sigma:g}"}
    return [(noisy, {"name": "camera (noisy)", "metadata": meta, "contrast_limits": (0, 255)}, "image")]
