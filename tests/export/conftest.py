"""Tiny trained models and their BioImage Model Zoo packages, made once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_selfsup_denoise import train
from napari_selfsup_denoise.export import export_bmz

pytest.importorskip("bioimageio.core", reason="the [bmz] extra is not installed")

TINY = {"max_steps": 3, "max_seconds": None, "patch_size": 32, "batch_size": 2, "depth": 2, "base_channels": 8}


@pytest.fixture(scope="session")
def image_3d() -> np.ndarray:
    """A smooth 3D stack with Gaussian noise (ZYX), large enough for a depth-1 U-Net's smallest tile."""
    rng = np.random.default_rng(1)
    z, y, x = np.mgrid[0:24, 0:40, 0:40].astype(np.float32)
    clean = 100 + 50 * np.sin(x / 5) * np.cos(y / 7) + 20 * np.sin(z / 4)
    return (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def packages(tmp_path_factory, camera_128, image_3d) -> dict[str, tuple[object, Path, np.ndarray]]:
    """``{case: (model, package path, training image)}`` for N2V 2D, blind-spot 2D and N2V 3D."""
    out = tmp_path_factory.mktemp("bmz")
    noisy = camera_128[1]
    cases = {
        "n2v": (noisy, dict(TINY, axes="YX", algorithm="n2v")),
        "blindspot": (noisy, dict(TINY, axes="YX", algorithm="blindspot")),
        "n2v_3d": (image_3d, dict(TINY, axes="ZYX", algorithm="n2v", depth=1, patch_size=16, patch_size_z=8)),
    }
    made = {}
    for case, (image, options) in cases.items():
        model = train(image, **options)
        # 2D with the crop of the training image the model keeps; 3D with the image given. After 3 steps these
        # models fail their self-check: their packages are written marked suspect (``passing`` is a model that passes).
        given = {} if image.ndim == 2 else {"image": image}
        path = export_bmz(model, out / case, accept_suspect=True, **given)
        made[case] = (model, path, image)
    return made


@pytest.fixture(scope="session")
def passing() -> tuple[object, np.ndarray]:
    """``(model, image)``: a blind-spot model whose self-check passed and chose the prior mean (3 steps).

    The probe of the issue-9 audit (camera 128 px from the corner, Gaussian sigma 25, seed 0); on main
    its export failed with "ArchitectureError ... (please report this)".
    """
    import skimage

    clean = skimage.data.camera()[:128, :128].astype(np.float32)
    image = (clean + np.random.default_rng(0).normal(0, 25, clean.shape)).astype(np.float32)
    return train(image, **dict(TINY, axes="YX", algorithm="blindspot")), image
