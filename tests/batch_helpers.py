"""What the batch tests share: a tiny untrained N2V model and a small uint16 Zarr stack (tests/ is on the path)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import zarr

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model

UNITS = 3 * 3 * 3  # work units of tiny_stack: 3 frames of 96^2 in units of 32^2


def tiny_n2v() -> Model:
    """An untrained 2D N2V model (depth 2, 8 channels), seeded, normalised for the stack's values."""
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", depth=2, base_channels=8, axes="YX"))
    torch.manual_seed(0)
    return Model(get_method(cfg).build(2, 1).eval(), cfg, "YX", 2, 1, Normalisation("meanstd", (100.0,), (10.0,)))


def tiny_stack(folder: Path) -> Path:
    """``folder/in.zarr``: uint16 Poisson counts, 3 frames of 96^2, chunks of one frame's 32^2, axes TYX."""
    img = np.random.default_rng(0).poisson(100, (3, 96, 96)).astype(np.uint16)
    arr = zarr.create_array(str(folder / "in.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype=img.dtype)
    arr[:] = img
    arr.attrs["axes"] = list("TYX")
    return folder / "in.zarr"
