"""Fixtures for the built-in prior: a stand-in prior in a temporary folder, or none at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_selfsup_denoise.prior import builtin


def _point_at(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make the package look for its shipped weights in ``folder`` (and forget what it read before)."""
    builtin.load_prior.cache_clear()
    monkeypatch.setattr(builtin, "weights_folder", lambda: folder)


@pytest.fixture
def no_prior(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The package as installed without its weights: an empty weights folder."""
    folder = tmp_path / "weights"
    folder.mkdir()
    _point_at(monkeypatch, folder)
    yield folder
    builtin.load_prior.cache_clear()


def write_stand_in(path: Path, seed: int = 3, ndim: int = 2) -> None:
    """An untrained blind-spot network (2D or 3D) at the default architecture, saved like the shipped prior."""
    import torch

    from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
    from napari_selfsup_denoise.engine.data import Normalisation
    from napari_selfsup_denoise.engine.methods import get_method
    from napari_selfsup_denoise.engine.model import Model

    torch.manual_seed(seed)
    axes = "ZYX" if ndim == 3 else "YX"
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", axes=axes, start_from="random"), ndim)
    net = get_method(cfg).build(ndim, 1)
    with torch.no_grad():
        net.noise.log_var.fill_(5.0)  # a noise model that must never be taken over
    model = Model(net, cfg, axes, ndim, 1, Normalisation("meanstd", (0.0,), (1.0,)))
    model.summary = {"steps": 0, "prior": {"version": "test", "commit": "0123abcd", "seed": seed}}
    model.save(path)


@pytest.fixture
def stand_in_prior(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Stand-in 2D and 3D priors (untrained, seeded) where the package looks for its weights; yields the 2D path."""
    folder = tmp_path / "weights"
    folder.mkdir()
    write_stand_in(folder / "blindspot_2d.sdmodel")
    write_stand_in(folder / "blindspot_3d.sdmodel", ndim=3)
    _point_at(monkeypatch, folder)
    yield folder / "blindspot_2d.sdmodel"
    builtin.load_prior.cache_clear()


@pytest.fixture(scope="session")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """A seeded synthetic 128 x 128 scene (blobs of many sizes on a gradient) and a noisy copy (sigma 0.1)."""
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    clean = 0.2 + 0.3 * xx / 128
    for _ in range(40):
        cy, cx, r, a = rng.uniform(0, 128), rng.uniform(0, 128), rng.uniform(2, 10), rng.uniform(0.2, 0.8)
        clean += a * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    return clean.astype(np.float32), noisy.astype(np.float32)
