"""Noise models: posterior limits, unit conversion, the classical estimate, and learning sigma / a, b."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import train
from napari_selfsup_denoise.engine.noise import FLOOR, NoiseModel, estimate_noise, gaussian_nll, posterior


def test_posterior_limits_give_y_and_mu():
    y, mu, var_x = torch.tensor([3.0, -1.0]), torch.tensor([1.0, 2.0]), torch.tensor([0.5, 2.0])
    mean0, var0 = posterior(y, mu, var_x, torch.full_like(y, 1e-12))
    mean_inf, var_inf = posterior(y, mu, var_x, torch.full_like(y, 1e12))
    torch.testing.assert_close(mean0, y)
    torch.testing.assert_close(mean_inf, mu)
    torch.testing.assert_close(var0, torch.zeros_like(y), atol=1e-9, rtol=0)
    torch.testing.assert_close(var_inf, var_x)
    mean_eq, _ = posterior(y, mu, var_x, var_x)
    torch.testing.assert_close(mean_eq, (y + mu) / 2)


def test_nll_is_smallest_at_the_true_variance():
    y = torch.randn(200_000, generator=torch.Generator().manual_seed(0)) * 2.0
    losses = [float(gaussian_nll(y, torch.zeros_like(y), torch.full_like(y, v))) for v in (2.0, 4.0, 8.0)]
    assert losses[1] < losses[0] and losses[1] < losses[2]


def test_report_converts_poisson_gaussian_parameters_to_image_units():
    a, b, offset, scale = 2.0, 9.0, 40.0, 12.0  # var = a * m + b in image units
    nm = NoiseModel(1, "poisson-gaussian")
    nm.initialise(np.array([a / scale]), np.array([(a * offset + b) / scale**2]), [offset], [scale])
    rep = nm.report()
    assert rep["noise_model"] == "poisson-gaussian"
    assert rep["noise_a"] == pytest.approx(a, rel=1e-5) and rep["noise_b"] == pytest.approx(b, rel=1e-4)
    # the normalised model gives the same variance as the image-unit model, mapped by scale**2
    m = torch.tensor([[[[25.0]]]])
    var_img = float(nm.variance((m - offset) / scale)) * scale**2
    assert var_img == pytest.approx(a * 25.0 + b, rel=1e-5)


def test_gaussian_report_is_sigma_in_image_units():
    nm = NoiseModel(2, "gaussian")
    nm.initialise(np.zeros(2), np.array([0.25, 0.04]), [0.0, 5.0], [10.0, 100.0])
    assert nm.report()["noise_sigma"] == pytest.approx([5.0, 20.0], rel=1e-5)


def _smooth(shape: tuple[int, int], lo: float, hi: float, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    img = np.sin(x / 9 + seed) * np.cos(y / 13) + 0.5 * np.sin((x + y) / 21)
    return lo + (hi - lo) * (img - img.min()) / np.ptp(img)


def test_classical_estimate_recovers_gaussian_and_poisson_gaussian_noise():
    rng = np.random.default_rng(1)
    clean = _smooth((256, 256), 0, 100)
    noisy = clean + rng.normal(0, 5, clean.shape)
    est = estimate_noise([noisy[None]], np.array([noisy.var()]), np.array([noisy.mean()]))
    assert est.a[0] * 100 < 0.2 * est.b[0]  # no real slope over the whole range
    assert np.sqrt(est.b[0]) == pytest.approx(5, rel=0.1)
    clean = _smooth((256, 256), 2, 60)
    noisy = rng.poisson(clean) + rng.normal(0, 2, clean.shape)
    est = estimate_noise([noisy[None]], np.array([noisy.var()]), np.array([noisy.mean()]))
    assert est.a[0] == pytest.approx(1.0, rel=0.2)
    assert est.b[0] == pytest.approx(4.0, abs=2.0)
    assert est.spread[0] > 0.5


@pytest.mark.slow
def test_learned_sigma_within_ten_percent_on_gaussian_noise():
    clean = _smooth((128, 128), 0, 200)
    noisy = (clean + np.random.default_rng(2).normal(0, 20, clean.shape)).astype(np.float32)
    model = train(
        noisy,
        axes="YX",
        algorithm="blindspot",
        noise_model="gaussian",
        max_steps=150,
        max_seconds=None,
        base_channels=12,
        precision="fp32",
        seed=0,
    )
    assert model.summary["noise_model"] == "gaussian"
    assert model.summary["noise_sigma"] == pytest.approx(20.0, rel=0.1)


@pytest.mark.slow
def test_learned_poisson_gaussian_within_twenty_percent():
    clean = _smooth((128, 128), 2, 60, seed=1)
    rng = np.random.default_rng(3)
    noisy = (rng.poisson(clean) + rng.normal(0, 4, clean.shape)).astype(np.float32)  # a = 1, b = 16
    model = train(
        noisy,
        axes="YX",
        algorithm="blindspot",
        max_steps=250,
        max_seconds=None,
        base_channels=12,
        precision="fp32",
        seed=0,
    )
    s = model.summary
    assert s["noise_model"] == "poisson-gaussian"  # chosen by "auto"
    assert s["noise_a"] == pytest.approx(1.0, rel=0.2)
    assert s["noise_b"] == pytest.approx(16.0, rel=0.2)


def test_known_sigma_is_kept_fixed():
    clean = _smooth((64, 64), 0, 100)
    noisy = (clean + np.random.default_rng(4).normal(0, 8, clean.shape)).astype(np.float32)
    model = train(
        noisy,
        axes="YX",
        algorithm="blindspot",
        noise_model="known:8",
        max_steps=5,
        max_seconds=None,
        base_channels=4,
        depth=2,
        val_fraction=0.0,
    )
    assert model.summary["noise_model"] == "known"
    assert model.summary["noise_sigma"] == pytest.approx(8.0, rel=1e-5)


def test_a_noise_level_pushed_below_its_floor_is_held_on_it():
    """The parameter itself stays at the floor, so one step up the gradient lifts the noise level again."""
    noise = NoiseModel(1, "gaussian")
    noise.initialise([0.0], [1.0], [0.0], [1.0], classical=[[0.0], [0.5]])
    with torch.no_grad():
        noise.log_var.fill_(-8.0)  # far below the floor, as many steps down the gradient leave it
    noise.project()
    assert float(noise.line()[1][0]) == pytest.approx(FLOOR * 0.5)
    assert torch.allclose(noise.log_var[0], torch.log(torch.tensor(FLOOR * 0.5)))


@pytest.mark.parametrize("kind", ["gaussian", "poisson-gaussian"])
def test_the_noise_model_starts_at_the_classical_estimate(kind):
    """Not at "all of the image variance is noise", which took ~60 steps to come down (issue 9)."""
    from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
    from napari_selfsup_denoise.engine.arrays import canonical
    from napari_selfsup_denoise.engine.data import fit_normalisation
    from napari_selfsup_denoise.engine.methods import get_method

    rng = np.random.default_rng(5)
    clean = _smooth((128, 128), 2, 60, seed=2)
    noisy = (rng.poisson(clean) + rng.normal(0, 2, clean.shape)).astype(np.float32)
    method = get_method(resolve_defaults(TrainConfig(algorithm="blindspot", noise_model=kind), ndim=2))
    net = method.build(2, 1)
    canon = canonical(noisy, "YX")
    method.prepare(net, canon, fit_normalisation(canon))
    rep = net.noise.report()
    if kind == "gaussian":
        assert rep["noise_sigma"] == pytest.approx(rep["classical_sigma"], rel=1e-4)
    else:
        assert (rep["noise_a"], rep["noise_b"]) == pytest.approx((rep["classical_a"], rep["classical_b"]), rel=1e-3)


@pytest.mark.parametrize("kind", ["gaussian", "poisson-gaussian", "known"])
def test_the_reference_variance_is_the_classical_estimate_whatever_the_training_did(kind):
    """The output choice needs a noise level the training cannot drift (issue 9: a learned level at its floor)."""
    noise = NoiseModel(1, kind)
    anchors = [[0.0], [4.0]] if kind == "poisson-gaussian" else None
    slope = [0.5] if kind == "poisson-gaussian" else [0.0]  # as BlindSpot.prepare starts each kind
    noise.initialise(slope, [1.0], [0.0], [1.0], classical=[slope, [1.0]], anchors=anchors)
    mu = torch.tensor([0.0, 2.0, 4.0]).view(1, 1, 3, 1)
    if kind == "known":  # the person's noise level is the reference
        assert torch.allclose(noise.reference_variance(mu), noise.variance(mu))
        return
    with torch.no_grad():
        noise.log_var.fill_(-8.0)
    noise.project()  # the learned level now sits on its floor, 0.8 x the classical
    want = torch.tensor([1.0, 2.0, 3.0]) if kind == "poisson-gaussian" else torch.ones(3)
    assert torch.allclose(noise.reference_variance(mu).flatten(), want)
    assert torch.allclose(noise.variance(mu).flatten(), FLOOR * want)


def test_a_report_reads_its_numbers_from_the_device_at_once():
    """Each read of a GPU tensor waits for the queued work: the report makes one read, not one per number."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Reads(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += func.overloadpacket.__name__ == "_local_scalar_dense"  # float(t), t.item()
            return func(*args, **(kwargs or {}))

    nm = NoiseModel(2, "poisson-gaussian")
    nm.initialise(
        np.array([0.1, 0.2]), np.array([0.3, 0.4]), [1.0, 2.0], [3.0, 4.0], np.array([[0.1, 0.2], [0.3, 0.4]])
    )
    reads = Reads()
    with reads:
        rep = nm.report()
    assert reads.count == 0
    assert rep["noise_a"] == pytest.approx([0.3, 0.8], rel=1e-5) and rep["classical_a"] == pytest.approx([0.3, 0.8])
