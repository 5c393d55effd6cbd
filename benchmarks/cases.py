"""The development benchmark's cases (see ../shared/data/README.md), built with fixed seeds."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

SHARED = Path(os.environ.get("SELFSUP_DENOISE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def camera_g25() -> tuple[np.ndarray, np.ndarray, float]:
    """skimage camera + Gaussian sigma 25 (rng 42); returns clean, noisy, data_range."""
    from napari_selfsup_denoise._sample_data import noisy_camera

    clean, noisy = noisy_camera(25.0, seed=42)
    return clean, noisy, 255.0


def _photon_case(name: str, peak: float = 30.0, read: float = 2.0) -> tuple[np.ndarray, np.ndarray, float]:
    """A StarDist image scaled to a ``peak``-photon peak, Poisson + Gaussian(``read``) noise (rng 42)."""
    import tifffile

    raw = tifffile.imread(SHARED / name).astype(np.float64)
    clean = raw / raw.max() * peak
    rng = np.random.default_rng(42)
    noisy = rng.poisson(clean) + rng.normal(0, read, clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32), float(peak)


def nuclei_pg30() -> tuple[np.ndarray, np.ndarray, float]:
    """StarDist 2D nuclei at a 30-photon peak with Poisson-Gaussian noise; clean, noisy, data_range."""
    return _photon_case("nuclei2d_stardist.tif")


def nuclei_pg20() -> tuple[np.ndarray, np.ndarray, float]:
    """The issue-9 variant: StarDist 2D nuclei at a 20-photon peak, Poisson + Gaussian(1.5) (rng 42)."""
    return _photon_case("nuclei2d_stardist.tif", 20.0, 1.5)


def nuclei3d_pg() -> tuple[np.ndarray, np.ndarray, float]:
    """StarDist 3D nuclei stack (ZYX) at a 30-photon peak with Poisson-Gaussian noise."""
    return _photon_case("nuclei3d_stardist.tif")


CASES = {"camera_g25": camera_g25, "nuclei_pg30": nuclei_pg30, "nuclei_pg20": nuclei_pg20, "nuclei3d": nuclei3d_pg}
