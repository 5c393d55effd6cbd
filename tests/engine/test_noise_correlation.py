"""Correlated noise is measured before training; ``auto`` routes around it and says why; explicit choices warn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from napari_selfsup_denoise.config import TrainConfig
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import PatchSampler, fit_normalisation
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.noise import estimate_noise
from napari_selfsup_denoise.engine.noise_correlation import CORRELATED_AT, measure_noise_correlation
from napari_selfsup_denoise.engine.route import CorrelatedNoiseWarning, route_for
from napari_selfsup_denoise.engine.train import train

TINY = {"max_steps": 1, "max_seconds": None, "patch_size": 32, "batch_size": 2, "depth": 2, "base_channels": 8}


def _scene(rng: np.random.Generator, shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    """Smooth blobs on a gradient (0-100): strong structure between neighbouring pixels."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    img = 0.2 * xx + 0.1 * yy
    for cy, cx, r in rng.uniform((0, 0, 4), (shape[0], shape[1], 14), (12, 3)):
        img += 60.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return img


def _noise(rng: np.random.Generator, shape: tuple[int, ...], rho: float, axis: int) -> np.ndarray:
    """Gaussian noise (sigma 10) filtered along ``axis`` with [1, rho]: lag-1 correlation rho / (1 + rho^2)."""
    n = rng.normal(0.0, 10.0, shape)
    return (n + rho * np.roll(n, 1, axis=axis)) / np.sqrt(1 + rho * rho)


def _correlated_y(seed: int = 0, shape: tuple[int, int] = (128, 128)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (_scene(rng, shape) + _noise(rng, shape, 0.8, 0)).astype(np.float32)


def test_detector_trips_on_correlated_noise_along_the_right_axis() -> None:
    rng = np.random.default_rng(1)
    scene = _scene(rng)
    for axis, name, other in ((0, "Y", "X"), (1, "X", "Y")):
        corr = measure_noise_correlation(canonical(scene + _noise(rng, scene.shape, 0.8, axis), "YX"))
        assert corr.axis == name and corr.correlated, corr
        assert 0.4 < corr.lag1[name] < 0.56 and abs(corr.lag1[other]) < 0.05, corr  # 0.8 / 1.64 = 0.49
        assert name in corr.reason() and "correlated" in corr.reason()


def test_white_noise_on_a_structured_image_does_not_trip_it() -> None:
    rng = np.random.default_rng(2)
    noisy = _scene(rng) + rng.normal(0.0, 10.0, (128, 128))
    assert np.corrcoef(noisy[1:].ravel(), noisy[:-1].ravel())[0, 1] > 0.5  # the image itself is far from white
    corr = measure_noise_correlation(canonical(noisy, "YX"))
    assert not corr.correlated and max(abs(v) for v in corr.lag1.values()) < 0.05, corr
    assert "independent" in corr.reason()


def test_time_lapse_uses_frame_differences_and_stacks_measure_z() -> None:
    rng = np.random.default_rng(3)
    scene = _scene(rng, (64, 64))
    frames = np.stack([scene + _noise(rng, scene.shape, 0.8, 0) for _ in range(6)])
    corr = measure_noise_correlation(canonical(frames, "TYX"))
    assert corr.method == "frame differences" and corr.axis == "Y", corr
    white = np.stack([scene + rng.normal(0, 10, scene.shape) for _ in range(6)])
    assert measure_noise_correlation(canonical(white, "TYX")).axis is None
    stack = np.stack([scene] * 12) + _noise(rng, (12, 64, 64), 0.8, 0)  # correlated between planes
    corr3 = measure_noise_correlation(canonical(stack, "ZYX"))
    assert corr3.axis == "Z" and abs(corr3.lag1["Y"]) < 0.05, corr3


def test_auto_picks_structn2v_along_the_correlated_axis_and_says_why() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorrelatedNoiseWarning)  # auto itself is never warned about
        model = drain(train(_correlated_y(), TrainConfig(axes="YX", **TINY)))
    assert model.config.algorithm == "structn2v" and model.config.struct_axis == "Y"
    choice = model.summary["algorithm_choice"]
    assert choice.startswith("structn2v along Y (auto: the noise is correlated along Y (lag-1 correlation Y 0."), choice
    assert "blind spot would learn it" in choice
    assert model.summary["start"]["kind"] == "random"


def test_auto_on_white_noise_keeps_the_blind_spot_and_says_the_noise_looks_independent() -> None:
    rng = np.random.default_rng(4)
    noisy = (_scene(rng) + rng.normal(0, 10, (128, 128))).astype(np.float32)
    routed = route_for(TrainConfig(axes="YX"), noisy)
    assert routed.config.algorithm == "auto" and not routed.warning
    assert routed.choice.startswith("blindspot (auto: 2D") and "looks independent" in routed.choice


@pytest.mark.parametrize(
    ("options", "words"),
    [({"algorithm": "n2v"}, "n2v was asked for and is used"),
     ({"algorithm": "structn2v", "struct_axis": "X"}, "structn2v masks along X here")],
)  # fmt: skip
def test_an_explicit_choice_on_correlated_noise_is_kept_and_warned_before_training(
    options: dict[str, str], words: str
) -> None:
    cfg = TrainConfig(axes="YX", **{**TINY, **options})
    with pytest.warns(CorrelatedNoiseWarning, match=words):
        model = drain(train(_correlated_y(), cfg))
    assert model.config.algorithm == options["algorithm"] and "algorithm_choice" not in model.summary
    assert words in model.summary["message"]


def test_structn2v_along_the_correlated_axis_is_not_warned() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorrelatedNoiseWarning)
        routed = route_for(TrainConfig(axes="YX", algorithm="structn2v", struct_axis="Y"), _correlated_y())
    assert not routed.warning and routed.config.algorithm == "structn2v"


def test_the_classical_noise_estimate_sees_all_of_correlated_noise() -> None:
    """The 4-neighbour estimate saw 0.63 of noise correlated 0.49 along Y; the self-check's n2v_residual then
    flagged a good structN2V result (1.67 against 0.75-1.45; camera_g25 with the noise filtered along Y)."""
    rng = np.random.default_rng(5)
    scene = _scene(rng, (192, 192))
    for rho, axis in ((0.8, 0), (0.5, 1), (0.0, 0)):
        noise = _noise(rng, scene.shape, rho, axis)
        y = (scene + noise)[None]
        est = estimate_noise([y], y.reshape(1, -1).var(axis=1), y.reshape(1, -1).mean(axis=1))
        assert est.a[0] == 0.0 or est.a[0] * float(y.mean()) < 0.1 * est.b[0]  # Gaussian: flat in the mean
        assert abs(est.b[0] / noise.var() - 1.0) < 0.15, (rho, est.b[0], noise.var())


def test_structn2v_patches_are_turned_by_half_turns_only_so_its_mask_keeps_its_axis() -> None:
    """Quarter turns put noise correlated along Y along X in half the patches, past a mask along Y
    (camera_g25, noise filtered along Y, 175 steps: 25.52 dB with quarter turns, 26.05 without turns)."""
    rows = np.repeat(np.arange(64, dtype=np.float32)[:, None], 64, axis=1)  # varies along Y only
    canon = canonical(rows, "YX")
    for half, turned in ((True, False), (False, True)):
        sampler = PatchSampler(canon, fit_normalisation(canon), (1, 16, 16), np.random.default_rng(0), 0.0,
                               True, half_turns=half)  # fmt: skip
        x = sampler.batch(32)[0].numpy()[:, 0, 0]  # (B, Y, X)
        along_x = np.abs(np.diff(x, axis=2)).max(axis=(1, 2)) > 0  # a patch turned by 90 degrees varies along X
        assert bool(along_x.any()) is turned


def test_weakly_correlated_noise_keeps_the_blind_spot_where_it_measured_better() -> None:
    """camera_g25 with noise correlated 0.19 along Y, 175 steps: blind-spot 27.87 dB, structN2V 25.94."""
    rng = np.random.default_rng(6)
    noisy = (_scene(rng) + _noise(rng, (128, 128), 0.2, 0)).astype(np.float32)
    routed = route_for(TrainConfig(axes="YX"), noisy)
    figure = routed.correlation.lag1["Y"] if routed.correlation is not None else 0.0
    assert 0.15 < figure < CORRELATED_AT, routed.correlation
    assert routed.config.algorithm == "auto" and "weakly correlated" in routed.choice
    assert not route_for(TrainConfig(axes="YX", algorithm="blindspot"), noisy).warning


def _correlated_yx(seed: int = 0) -> np.ndarray:
    """Noise correlated along Y (lag-1 0.49) and along X (0.40): both above the threshold."""
    rng = np.random.default_rng(seed)
    noise = _noise(rng, (128, 128), 0.8, 0)
    noise = (noise + 0.5 * np.roll(noise, 1, axis=1)) / np.sqrt(1.25)
    return (_scene(rng) + noise).astype(np.float32)


def test_structn2v_masking_a_cross_through_the_correlated_axis_is_not_warned() -> None:
    """``struct_axis='YX'`` masks Y too; it was warned as 'masks along YX here, so the noise along Y still leaks'."""
    noisy = _correlated_yx()
    routed = route_for(TrainConfig(axes="YX"), noisy)
    assert routed.config.algorithm == "structn2v" and routed.config.struct_axis == "Y", routed.correlation
    assert routed.correlation is not None and routed.correlation.lag1["X"] > CORRELATED_AT
    assert not route_for(TrainConfig(axes="YX", algorithm="structn2v", struct_axis="YX"), noisy).warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", CorrelatedNoiseWarning)
        model = drain(train(noisy, TrainConfig(axes="YX", algorithm="structn2v", struct_axis="YX", **TINY)))
    assert model.config.struct_axis == "YX" and "still leaks" not in model.summary.get("message", "")


def test_a_3d_stack_with_noise_correlated_along_z_or_y_trains_structn2v_along_that_axis() -> None:
    rng = np.random.default_rng(7)
    scene = np.stack([_scene(rng, (48, 48))] * 16)
    for axis, name in ((0, "Z"), (1, "Y")):
        stack = (scene + _noise(rng, scene.shape, 0.8, axis)).astype(np.float32)
        routed = route_for(TrainConfig(axes="ZYX"), stack)
        assert routed.config.algorithm == "structn2v" and routed.config.struct_axis == name, routed.correlation
        assert routed.choice.startswith(f"structn2v along {name} (auto: the noise is correlated along {name} (")
    cfg = TrainConfig(axes="ZYX", max_steps=1, max_seconds=None, patch_size=16, patch_size_z=8, batch_size=2)
    model = drain(train(stack, cfg))  # the last stack: correlated along Y
    assert model.config.algorithm == "structn2v" and model.config.struct_axis == "Y"
    white = (scene + rng.normal(0, 10, scene.shape)).astype(np.float32)
    assert route_for(TrainConfig(axes="ZYX"), white).config.algorithm == "auto"


@pytest.mark.parametrize("axis", ["", "YY", "Q", "ZYXX"])
def test_struct_axis_must_name_distinct_axes(axis: str) -> None:
    with pytest.raises(ValueError, match="struct_axis must be Z, Y or X, or several of them"):
        TrainConfig(struct_axis=axis)
