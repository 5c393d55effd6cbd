"""3D defaults sized for a minute on one CPU thread (issue 10, item 10); figures from benchmarks/bench_3d.py."""

from __future__ import annotations

import pytest

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine.methods import get_method


@pytest.mark.parametrize("algorithm", ["n2v", "n2v2", "structn2v", "n2n", "blindspot"])
def test_a_3d_default_step_and_margin_stay_small(algorithm):
    cfg = resolve_defaults(TrainConfig(axes="ZYX", algorithm=algorithm), 3)
    voxels = cfg.batch_size * cfg.patch_size_z * cfg.patch_size**2
    assert voxels <= 65_536  # the 2D table's 16 x 16 x 64 x 64 (1 M voxels, ~4 steps a minute) no longer applies
    net = get_method(cfg).build(3, 1)
    assert int(net.margin) <= 32  # depth 3 (margin 56) padded a 32-plane stack to 144 planes for denoising
