"""Shared fixtures: small seeded noisy images."""

from __future__ import annotations

import os

# `make test` runs the suite in parallel workers (pytest-xdist, one per core): each worker then computes on one
# thread, so that the workers do not fight over the cores (set before torch is imported).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("SELFSUP_DENOISE_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest
import skimage.data

from napari_selfsup_denoise.metrics import psnr


@pytest.fixture(scope="session")
def camera_128() -> tuple[np.ndarray, np.ndarray]:
    """A 128x128 crop of skimage's camera and a noisy copy (Gaussian sigma 25, seed 42)."""
    clean = skimage.data.camera()[200:328, 180:308].astype(np.float32)
    noisy = clean + np.random.default_rng(42).normal(0, 25, clean.shape).astype(np.float32)
    return clean, noisy


@pytest.fixture(scope="session")
def noisy_3d() -> np.ndarray:
    """A small smooth 3D stack with Gaussian noise, axes ZYX."""
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[0:20, 0:40, 0:36].astype(np.float32)
    clean = 100 + 50 * np.sin(x / 5) * np.cos(y / 7) + 20 * np.sin(z / 4)
    return (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)


def smooth_noisy_stack(shape: tuple[int, int, int]) -> np.ndarray:
    """A smooth 3D stack (Gaussian-filtered noise, values 20-220) with Gaussian noise sigma 20, seed 0, axes ZYX."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(0)
    clean = ndi.gaussian_filter(rng.random(shape), 3)
    clean = (clean - clean.min()) / np.ptp(clean) * 200 + 20
    return (clean + rng.normal(0, 20, clean.shape)).astype(np.float32)


@pytest.fixture(name="make_stack", scope="session")
def make_stack_fixture():
    """:func:`smooth_noisy_stack`, for module fixtures that need their own shape."""
    return smooth_noisy_stack


@pytest.fixture(name="psnr")
def psnr_fixture():
    """PSNR in dB against a reference of range 255 (the camera crops), or of ``data_range``."""
    return lambda image, reference, data_range=255.0: psnr(image, reference, data_range)
