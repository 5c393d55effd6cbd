"""Does the blind-spot posterior standard deviation cover the real error? (issue 10, item 9)

Trains a blind-spot model on ``nuclei_pg30`` for a STEP budget (reproducible under load),
predicts the posterior mean and standard deviation, and compares them with the clean image:
the fraction of pixels with ``|denoised - clean| <= k * sd`` (68.3 % / 95.4 % expected for
k = 1 / 2 if the sd is right), the correlation of sd with |error|, and both inside
nuclei (clean above its median) and in the background. A single scale factor fitted on one
half of the pixels (even rows) is then tested on the other half (odd rows), to see whether a
scalar calibration would be enough - it needs the clean image, which users do not have.

The uncertainty output is removed from the CLI, the widget and ``Model.denoise`` until it
is calibrated (``config.UNCERTAINTY_REMOVED``); this script asks the engine's prediction
path for it directly (``PredictConfig(uncertainty=True)``), as whoever calibrates it will.

Example::

    SELFSUP_DENOISE_THREADS=1 python benchmarks/uncertainty_coverage.py --steps 400
"""

from __future__ import annotations

import argparse

import numpy as np

from cases import nuclei_pg30


def coverage(err: np.ndarray, sd: np.ndarray, k: float = 1.0) -> float:
    """Fraction of pixels whose absolute error is at most ``k`` standard deviations."""
    return float(np.mean(np.abs(err) <= k * sd))


def report(name: str, err: np.ndarray, sd: np.ndarray) -> None:
    """Print coverage at 1 and 2 sd, the correlation of sd with |error|, and the mean sd and |error|."""
    corr = float(np.corrcoef(sd.ravel(), np.abs(err).ravel())[0, 1])
    print(
        f"{name:<22} cover1 {coverage(err, sd):.3f}  cover2 {coverage(err, sd, 2):.3f}  corr {corr:+.3f}  "
        f"mean sd {sd.mean():.3f}  rms err {np.sqrt((err**2).mean()):.3f}"
    )


def main() -> None:
    """Train, predict with uncertainty, print the table."""
    from napari_selfsup_denoise.api import train
    from napari_selfsup_denoise.config import PredictConfig, TrainConfig
    from napari_selfsup_denoise.engine.events import drain
    from napari_selfsup_denoise.engine.predict import predict

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    clean, noisy, _ = nuclei_pg30()
    cfg = TrainConfig(algorithm="blindspot", axes="YX", max_steps=args.steps, max_seconds=None, seed=args.seed)
    model = train(noisy, cfg)
    den, sd = drain(predict(model, noisy, PredictConfig(uncertainty=True), axes="YX"))  # the posterior and its sd
    err = den - clean
    print(f"nuclei_pg30 {clean.shape}, blind-spot {args.steps} steps, seed {args.seed}")
    report("all pixels", err, sd)
    fg = clean > np.median(clean)
    report("nuclei (clean > med)", err[fg], sd[fg])
    report("background", err[~fg], sd[~fg])
    even, odd = (slice(0, None, 2), slice(None)), (slice(1, None, 2), slice(None))
    z = np.abs(err[even]) / np.maximum(sd[even], 1e-12)
    scale = float(np.quantile(z, 0.6827))  # the factor that makes the fit half cover 68.27 %
    print(f"scale fitted on even rows: {scale:.3f}")
    report("odd rows, scaled", err[odd], scale * sd[odd])
    fo, ft = fg[odd], fg[odd]
    report("odd nuclei, scaled", err[odd][fo], scale * sd[odd][ft])
    report("odd background, scaled", err[odd][~fo], scale * sd[odd][~ft])


if __name__ == "__main__":
    main()
