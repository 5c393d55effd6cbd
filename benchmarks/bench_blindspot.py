"""Blind-spot benchmark on the development cases of ``../shared/data/README.md``.

Usage::

    python benchmarks/bench_blindspot.py --case camera_g25 --seconds 120 --threads 2

Prints the PSNR of the posterior mean, the prior mean (and with ``--tta`` the
8-fold test-time-augmented posterior), the fitted noise parameters, steps and
timings. The noise parameters are never given to the method.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES  # noqa: E402
from napari_selfsup_denoise.metrics import psnr  # noqa: E402


def main() -> None:
    """Parse arguments, train, denoise, print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["camera_g25", "nuclei_pg30", "nuclei3d"], default="camera_g25")
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--steps", type=int, default=10**6, help="step budget (whichever ends first)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--noise-model", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--tta", action="store_true", help="also report the 8-fold TTA posterior")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", nargs="*", default=[], help="extra TrainConfig fields, KEY=JSON")
    args = ap.parse_args()
    os.environ["SELFSUP_DENOISE_THREADS"] = str(args.threads)
    from napari_selfsup_denoise import train

    clean, noisy, rng_ = CASES[args.case]()
    axes = "ZYX" if noisy.ndim == 3 else "YX"
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in args.set)}
    t0 = time.perf_counter()
    model = train(
        noisy,
        axes=axes,
        algorithm="blindspot",
        max_seconds=args.seconds,
        max_steps=args.steps,
        noise_model=args.noise_model,
        precision=args.precision,
        seed=args.seed,
        **extra,
    )
    t1 = time.perf_counter()
    post = model.denoise(noisy, precision=args.precision)
    t2 = time.perf_counter()
    prior = model.denoise(noisy, precision=args.precision, output="prior")
    res = {
        "case": args.case,
        "budget_s": args.seconds,
        "threads": args.threads,
        "noisy": round(psnr(noisy, clean, rng_), 2),
        "posterior": round(psnr(post, clean, rng_), 2),
        "prior": round(psnr(prior, clean, rng_), 2),
        "train_s": round(t1 - t0, 1),
        "predict_s": round(t2 - t1, 1),
        **{k: v for k, v in model.summary.items() if k not in ("message",)},
    }
    if args.tta:
        res["posterior_tta"] = round(psnr(model.denoise(noisy, precision=args.precision, tta=True), clean, rng_), 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
