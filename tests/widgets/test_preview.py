"""The live-preview source: throttled to a share of the run, crops placed on the source's grid."""

from __future__ import annotations

import numpy as np

from napari_selfsup_denoise._widgets._layers import Snapshot
from napari_selfsup_denoise._widgets._preview import (
    PREVIEW_SHARE,
    PreviewSource,
    preview_layer_data,
    preview_translate,
)


def _snap(shape: tuple[int, ...], **placement) -> Snapshot:
    nd = len(shape)
    base = {"scale": (1.0,) * nd, "translate": (0.0,) * nd, "rotate": np.eye(nd), "shear": np.zeros(nd * (nd - 1) // 2)}
    return Snapshot("s", np.arange(np.prod(shape), dtype=np.float32).reshape(shape), False, {**base, **placement})


def test_preview_costs_at_most_its_share_of_the_time():
    src = PreviewSource(_snap((4, 64, 64)), "TYX")
    assert src() is None  # no region chosen yet
    src.region = ((2, slice(8, 40), slice(0, 64)), (2, 8, 0))
    crop = src()
    assert crop.shape == (32, 64)
    np.testing.assert_array_equal(crop, src.snap.data[2, 8:40])
    src.called_at -= 5.0  # the first preview (warming up) took 5 s: not held against the next one
    src.arrived()
    assert src.cost == 0.0
    assert src() is not None
    src.called_at -= 0.5  # the second took half a second to come back
    src.arrived()
    assert src.cost >= 0.5
    assert src() is None  # too soon: it would take more than PREVIEW_SHARE of the time
    src.called_at -= src.cost / PREVIEW_SHARE
    assert src() is not None


def test_crop_is_placed_on_the_slice_it_came_from():
    snap = _snap((6, 48, 48), scale=(3.0, 0.5, 0.5), translate=(5.0, 1.0, 2.0))
    region = ((4, slice(8, 40), slice(16, 48)), (4, 8, 16))
    data = preview_layer_data(np.zeros((32, 32), np.float32), region)
    assert data.shape == (1, 32, 32)
    assert preview_translate(snap, region[1]) == (5.0 + 4 * 3.0, 1.0 + 8 * 0.5, 2.0 + 16 * 0.5)


def test_crop_offset_follows_the_layer_rotation():
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # 90 degrees
    snap = _snap((48, 48), scale=(2.0, 2.0), rotate=rot)
    assert np.allclose(preview_translate(snap, (10, 0)), (0.0, 20.0))
