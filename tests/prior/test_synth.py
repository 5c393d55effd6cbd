"""The procedural pre-training data: reads no file, is seeded, covers every scene, adds the noise it reports."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_selfsup_denoise.prior import synth

_OPENED: list[str] = []
_WATCH = [False]


_CODE = (".py", ".pyc", ".so", ".pyd")  # modules a library imports lazily on first use are code, not data


def _audit(event: str, args: tuple) -> None:
    if _WATCH[0] and event in ("open", "os.open", "io.open") and not str(args[0]).endswith(_CODE):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed; the flag limits it to the generator's calls

SHAPES = [(48, 48), (12, 24, 24)]


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_the_generator_opens_no_file(shape: tuple[int, ...]) -> None:
    _OPENED.clear()
    _WATCH[0] = True
    try:
        for i, kind in enumerate(synth.SCENE_KINDS):
            for noise in synth.NOISE_KINDS:
                synth.generate(i, shape, kind=kind, noise=noise)
        synth.generate(99, shape)
    finally:
        _WATCH[0] = False
    assert _OPENED == []


def test_the_audit_hook_sees_a_file_being_opened(tmp_path) -> None:
    # the hook above would catch a generator that reads a file (so the test above can fail)
    path = tmp_path / "texture.npy"
    np.save(path, np.zeros(3))
    _OPENED.clear()
    _WATCH[0] = True
    try:
        np.load(path)
    finally:
        _WATCH[0] = False
    assert any("texture.npy" in p for p in _OPENED)


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
def test_every_scene_kind_gives_a_finite_non_constant_image(shape: tuple[int, ...]) -> None:
    for i, kind in enumerate(synth.SCENE_KINDS):
        s = synth.generate(i, shape, kind=kind)
        assert s.kind == kind
        assert s.noisy.shape == s.clean.shape == shape
        assert s.noisy.dtype == s.clean.dtype == np.float32
        assert np.isfinite(s.noisy).all() and np.isfinite(s.clean).all()
        assert np.ptp(s.clean) > 0, kind


def test_the_same_seed_gives_the_same_image_and_another_seed_another() -> None:
    a, b, c = synth.generate(7, (40, 40)), synth.generate(7, (40, 40)), synth.generate(8, (40, 40))
    np.testing.assert_array_equal(a.noisy, b.noisy)
    np.testing.assert_array_equal(a.clean, b.clean)
    assert a.noise == b.noise and a.kind == b.kind
    assert not np.array_equal(a.clean, c.clean)


def test_random_draws_reach_every_scene_and_both_noises() -> None:
    rng = np.random.default_rng(0)
    kinds, noises = set(), set()
    for _ in range(60):
        s = synth.generate(rng, (16, 16))
        kinds.add(s.kind)
        noises.add(s.noise.kind)
    assert kinds == set(synth.SCENE_KINDS)
    assert noises == set(synth.NOISE_KINDS)


def _ratio(s: synth.SynthImage, mask: np.ndarray | None = None) -> float:
    """Observed residual variance over the advertised variance."""
    r = (s.noisy.astype(np.float64) - s.clean) ** 2
    v = s.noise.variance(s.clean.astype(np.float64))
    if mask is not None:
        r, v = r[mask], v[mask]
    return float(r.mean() / v.mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gaussian_noise_has_the_advertised_sigma(seed: int) -> None:
    s = synth.generate(seed, (128, 128), kind="texture", noise="gaussian")
    assert s.noise.a == 0.0
    resid = s.noisy.astype(np.float64) - s.clean
    assert abs(resid.mean()) < 0.05 * np.sqrt(s.noise.b)
    assert _ratio(s) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_poisson_gaussian_noise_follows_a_times_signal_plus_b(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scene, _ = synth.clean_scene(rng, (160, 160), "texture")
    noisy, clean, p = synth.add_noise(rng, scene, "poisson-gaussian")
    s = synth.SynthImage(noisy, clean, p, "texture")
    assert p.a > 0
    assert _ratio(s) == pytest.approx(1.0, abs=0.06)
    # the variance grows with the signal as a * signal: check the dim and the bright halves separately
    mid = np.median(clean)
    for half in (clean <= mid, clean > mid):
        assert _ratio(s, half) == pytest.approx(1.0, abs=0.1)


def test_noise_ranges_cover_few_photons_to_high_counts() -> None:
    rng = np.random.default_rng(3)
    peaks = [synth.add_noise(rng, np.ones((8, 8), np.float32), "poisson-gaussian")[2].peak for _ in range(200)]
    assert min(peaks) < 10 and max(peaks) > 500
    sig = [np.sqrt(synth.add_noise(rng, np.ones((8, 8), np.float32), "gaussian")[2].b) for _ in range(200)]
    assert min(sig) < max(sig) / 100  # over orders of magnitude of dynamic range and noise level


def test_bad_arguments_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="dead_leaves"):
        synth.generate(0, (32, 32), kind="cats")
    with pytest.raises(ValueError, match="poisson-gaussian"):
        synth.generate(0, (32, 32), noise="speckle")
    with pytest.raises(ValueError, match="2D or 3D"):
        synth.generate(0, (32,))
