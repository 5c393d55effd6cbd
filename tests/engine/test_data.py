"""Normalisation statistics of large series."""

import numpy as np

from napari_selfsup_denoise.engine import data as data_mod
from napari_selfsup_denoise.engine.arrays import canonical


class _Recording:
    """An array-like that records which time points were read."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype, self.frames = a, a.shape, a.dtype, set()

    def __getitem__(self, ix):
        t = ix[0]
        self.frames |= {t} if isinstance(t, int | np.integer) else set(range(*t.indices(self.shape[0])))
        return self.a[ix]


def test_statistics_of_a_long_series_read_a_few_whole_frames(monkeypatch):
    """A Zarr series chunked per frame then decodes a few frames for the statistics, not every frame."""
    monkeypatch.setattr(data_mod, "_MAX_STATS_VALUES", 2000)
    img = np.random.default_rng(0).normal(100, 10, (40, 32, 32)).astype(np.float32)
    src = _Recording(img)
    norm = data_mod.fit_normalisation(canonical(src, "TYX"))
    assert len(src.frames) == data_mod._MIN_STATS_FRAMES and {0, 39} <= src.frames  # evenly spaced, ends included
    assert abs(norm.offset[0] - 100) < 1.0 and abs(norm.scale[0] / 10 - 1) < 0.05


def test_statistics_of_a_small_image_use_every_value():
    img = np.random.default_rng(1).normal(5, 2, (3, 20, 30))
    v = data_mod.stats_subset(canonical(img, "TYX"), 0)
    np.testing.assert_array_equal(np.sort(v), np.sort(img.ravel()))
