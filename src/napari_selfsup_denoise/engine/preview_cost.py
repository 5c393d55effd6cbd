"""What a live preview may cost: at most a few training steps of compute, in 2D and in 3D.

The cost of a prediction is counted in voxels of its network windows (the core
rounded up to the pooling grid plus the margin on every side), and compared with
the voxels of one training step (batch x patch), whose backward pass makes it
about three forward passes. A preview larger than the bound is predicted only in
a central box that fits; the rest of it stays the raw input.
"""

from __future__ import annotations

import math

from ..config import ResolvedConfig

PREVIEW_STEPS = 6.0  # one preview computes at most as much as this many training steps (2D defaults fit)
FORWARD_SHARE = 1 / 3  # a forward pass is about a third of a training step (forward + backward)


def step_voxels(cfg: ResolvedConfig, ndim: int) -> int:
    """Voxels one training step puts through the network (batch x patch)."""
    patch = cfg.patch_size**2 * (cfg.patch_size_z if ndim == 3 else 1)
    return int(cfg.batch_size * patch)


def window_voxels(core: tuple[int, ...], margin: int, multiple: int) -> int:
    """Voxels of the network window that predicts a ``core`` box (spatial extents)."""
    return math.prod(-(-c // multiple) * multiple + 2 * margin for c in core)


def preview_steps(core: tuple[int, ...], margin: int, multiple: int, cfg: ResolvedConfig) -> float:
    """The cost of predicting ``core`` (spatial extents), in training steps."""
    return window_voxels(core, margin, multiple) * FORWARD_SHARE / step_voxels(cfg, len(core))


def preview_region(
    shape: tuple[int, ...], axes: str, margin: int, multiple: int, cfg: ResolvedConfig
) -> tuple[slice, ...] | None:
    """The central box of an image of ``shape`` (``axes``) whose prediction costs at most :data:`PREVIEW_STEPS`.

    The largest spatial extent shrinks first; None when even a single pixel costs more.
    """
    spatial = [i for i, a in enumerate(axes) if a in "ZYX"]
    core = [shape[i] for i in spatial]
    while preview_steps(tuple(core), margin, multiple, cfg) > PREVIEW_STEPS:
        j = max(range(len(core)), key=lambda k: core[k])
        if core[j] == 1:
            return None
        core[j] = max(1, core[j] * 3 // 4)
    region = [slice(None)] * len(shape)
    for i, c in zip(spatial, core):
        lo = (shape[i] - c) // 2
        region[i] = slice(lo, lo + c)
    return tuple(region)
