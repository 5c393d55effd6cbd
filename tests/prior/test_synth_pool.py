"""The pre-training pool normalises each generated image exactly as the engine normalises a user's image."""

from __future__ import annotations

import numpy as np
import pytest

from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import fit_normalisation
from napari_selfsup_denoise.prior.pool import SynthPool
from napari_selfsup_denoise.prior.synth import generate


@pytest.mark.parametrize("shape", [(64, 64), (16, 32, 32)], ids=["2d", "3d"])
def test_pool_images_use_the_engines_normalisation_of_the_noisy_image(shape: tuple[int, ...]) -> None:
    pool = SynthPool(np.random.default_rng(5), 1, shape)
    sample = generate(np.random.default_rng(5), shape)  # the same draws as the pool's first image
    norm = fit_normalisation(canonical(sample.noisy, "YX" if len(shape) == 2 else "ZYX"))
    noisy, clean, var_n = pool.images[0]
    np.testing.assert_allclose(noisy, norm.forward(sample.noisy[None], 0)[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(clean, norm.forward(sample.clean[None], 0)[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(var_n, sample.noise.variance(sample.clean) / norm.scale[0] ** 2, rtol=1e-5)
    assert abs(float(noisy.mean())) < 1e-3 and float(noisy.std()) == pytest.approx(1.0, abs=1e-3)


def test_batches_are_crops_of_pool_images_and_refresh_replaces_them() -> None:
    pool = SynthPool(np.random.default_rng(0), 3, (48, 48))
    x, clean, var_n = pool.batch(5, 32)
    assert x.shape == clean.shape == var_n.shape == (5, 1, 32, 32)
    assert (var_n > 0).all()
    crop = x[0, 0].numpy()
    variants = [np.rot90(crop, k) for k in range(4)] + [np.rot90(crop[:, ::-1], k) for k in range(4)]
    found = any(  # some rotation / mirror of the crop sits in some pool image
        np.array_equal(img[0, y : y + 32, x0 : x0 + 32], v)
        for img in pool.images
        for v in variants
        for y in range(17)
        for x0 in range(17)
    )
    assert found
    before = [img.copy() for img in pool.images]
    pool.refresh(3)
    assert pool.generated == 6
    assert any(not np.array_equal(a, b) for a, b in zip(before, pool.images))
