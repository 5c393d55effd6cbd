"""Zero-shot quality of a prior weights file: frozen network, per-image noise model, PSNR against the clean image.

For each image the normalisation is fitted on the noisy image and the noise
model is the engine's classical estimate (``engine.noise.estimate_noise`` on
the planes ``BlindSpotMethod`` samples), not trained; the network is never
updated. Reported: the posterior mean (``engine.noise.posterior``) and the
prior mean, as PSNR in dB.

    SELFSUP_DENOISE_THREADS=1 OMP_NUM_THREADS=1 python tools/eval_prior.py \\
        src/napari_selfsup_denoise/prior/weights/blindspot2d.sdmodel --crop 256 --synthetic 8

Cases: ``camera_g25`` and ``nuclei_pg30`` as in ``../shared/data/README.md``
(evaluation only: these images never enter pre-training), and held-out
synthetic images (seeds from 10**9 up, which pre-training never draws).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from napari_selfsup_denoise.config import PredictConfig
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import fit_normalisation, stats_subset
from napari_selfsup_denoise.engine.device import configure_threads
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.methods.blindspot import AUTO_SPREAD, sample_planes
from napari_selfsup_denoise.engine.model import Model, load_model
from napari_selfsup_denoise.engine.noise import NoiseModel, estimate_noise
from napari_selfsup_denoise.engine.predict import predict
from napari_selfsup_denoise.prior.synth import generate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT_SEED = 10**9


def psnr(ref: np.ndarray, x: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB."""
    mse = float(np.mean((np.asarray(ref, np.float64) - np.asarray(x, np.float64)) ** 2))
    return 10 * np.log10(data_range**2 / max(mse, 1e-20))


def zero_shot_model(prior: Model, image: np.ndarray, axes: str) -> Model:
    """A copy of ``prior`` with this image's normalisation and its classical noise estimate (nothing trained)."""
    canon = canonical(image, axes)
    norm = fit_normalisation(canon, prior.config.normalisation, prior.config.percentiles)
    net = copy.deepcopy(prior.net)
    v = (stats_subset(canon, 0) - norm.offset[0]) / norm.scale[0]
    est = estimate_noise(
        sample_planes(canon, norm, np.random.default_rng(0)), np.array([v.var()]), np.array([v.mean()])
    )
    kind = "poisson-gaussian" if float(np.max(est.spread)) > AUTO_SPREAD else "gaussian"
    noise: NoiseModel = net.noise  # type: ignore[assignment]
    noise.set_kind(kind)
    classical = np.stack([est.a, est.b])
    if kind == "gaussian":
        noise.initialise(np.zeros(1), est.b, norm.offset, norm.scale, classical)
    else:
        noise.initialise(est.a, est.b, norm.offset, norm.scale, classical, np.stack([est.low, est.high]))
    return Model(net, prior.config, axes, prior.ndim, 1, norm, {"noise": noise.report()}, prior.method)


def evaluate(prior: Model, noisy: np.ndarray, clean: np.ndarray, data_range: float) -> dict[str, Any]:
    """PSNR of the noisy input, the posterior mean and the prior mean; the fitted noise; seconds."""
    axes = "YX" if noisy.ndim == 2 else "ZYX"
    t0 = time.perf_counter()
    model = zero_shot_model(prior, noisy, axes)
    out: dict[str, Any] = {"noisy": round(psnr(clean, noisy, data_range), 2)}
    for output in ("posterior", "prior"):
        den = drain(predict(model, noisy, PredictConfig(output=output), axes=axes))
        out[output] = round(psnr(clean, den, data_range), 2)
    out["noise"] = model.summary["noise"]
    out["seconds_untimed"] = round(time.perf_counter() - t0, 1)
    return out


def nl_means(noisy: np.ndarray, data_range: float) -> np.ndarray:
    """scikit-image NL-means (h = 0.8 sigma, 5 x 5 patches, search distance 6).

    sigma is the engine's classical noise estimate at the image's mean intensity
    (scikit-image's own estimator needs PyWavelets, which is not installed).
    """
    from skimage.restoration import denoise_nl_means

    lo = float(noisy.min())
    x = ((noisy - lo) / data_range).astype(np.float64)
    est = estimate_noise([x[None]], np.array([x.var()]), np.array([x.mean()]))
    sigma = float(np.sqrt(est.a[0] * est.mean[0] + est.b[0]))
    out = denoise_nl_means(x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True)
    return out * data_range + lo


def _crop(a: np.ndarray, edge: int) -> np.ndarray:
    if edge <= 0:
        return a
    box = tuple(slice((n - min(n, edge)) // 2, (n - min(n, edge)) // 2 + min(n, edge)) for n in a.shape)
    return a[box]


def dev_cases(crop: int) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """``name -> (noisy, clean, data_range)`` for the development benchmark (seeded as in its README)."""
    import skimage.data
    import tifffile

    cases = {}
    cam = skimage.data.camera().astype(np.float64)
    noisy = cam + np.random.default_rng(42).normal(0, 25, cam.shape)
    cases["camera_g25"] = (_crop(noisy, crop), _crop(cam, crop), 255.0)
    raw = tifffile.imread(DATA / "nuclei2d_stardist.tif").astype(np.float64)
    clean = raw / raw.max() * 30
    rng = np.random.default_rng(42)
    noisy = rng.poisson(clean) + rng.normal(0, 2, clean.shape)
    cases["nuclei_pg30"] = (_crop(noisy, crop), _crop(clean, crop), 30.0)
    return {k: (n.astype(np.float32), c.astype(np.float32), r) for k, (n, c, r) in cases.items()}


def synthetic_cases(count: int, edge: int) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Held-out generated images: ``name -> (noisy, clean, data_range)`` (range = clean max - min)."""
    cases = {}
    for i in range(count):
        s = generate(HELD_OUT_SEED + i, (edge, edge))
        name = f"synth{i}_{s.kind}_{'g' if s.noise.kind == 'gaussian' else 'pg'}"
        cases[name] = (s.noisy, s.clean, float(s.clean.max() - s.clean.min()))
    return cases


def main(argv: list[str] | None = None) -> int:
    """Evaluate the weights files given on the command line; print one JSON line per file and case."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("weights", nargs="+", type=Path)
    p.add_argument("--crop", type=int, default=0, help="central crop edge of the development cases (0: whole)")
    p.add_argument("--synthetic", type=int, default=0, help="held-out synthetic images (256 x 256)")
    p.add_argument("--no-dev", action="store_true", help="skip the development cases")
    p.add_argument("--nlmeans", action="store_true", help="also report NL-means on the same images (a reference)")
    args = p.parse_args(argv)
    configure_threads()
    cases = {} if args.no_dev else dev_cases(args.crop)
    cases.update(synthetic_cases(args.synthetic, 256))
    if args.nlmeans:
        for name, (noisy, clean, rng) in cases.items():
            print(
                json.dumps(
                    {"reference": "nl-means", "case": name, "psnr": round(psnr(clean, nl_means(noisy, rng), rng), 2)}
                )
            )
    for path in args.weights:
        prior = load_model(path)
        steps = prior.summary.get("prior", {}).get("steps")
        gains = []
        for name, (noisy, clean, rng) in cases.items():
            res = evaluate(prior, noisy, clean, rng)
            gains.append(res["posterior"] - res["noisy"])
            print(json.dumps({"weights": str(path), "steps": steps, "case": name, **res}), flush=True)
        mean_gain = round(float(np.mean(gains)), 2)
        print(json.dumps({"weights": str(path), "steps": steps, "mean_gain_posterior": mean_gain}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
