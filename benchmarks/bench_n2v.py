"""PSNR of N2V-family training at fixed time budgets on the development benchmark.

Usage::

    python benchmarks/bench_n2v.py --case camera_g25 --algorithm n2v --seconds 30 60 120 [--set key=value]

Prints one JSON line per run: case, algorithm, budget, steps, PSNR (noisy and denoised).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES  # noqa: E402
from napari_selfsup_denoise.metrics import psnr  # noqa: E402


def parse_value(v: str) -> object:
    """Turn ``"8"``, ``"0.5"``, ``"true"`` into int, float, bool; anything else stays a string."""
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="camera_g25", choices=sorted(CASES))
    p.add_argument("--algorithm", default="n2v")
    p.add_argument("--seconds", type=float, nargs="+", default=[30, 60, 120])
    p.add_argument("--tta", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override")
    a = p.parse_args()
    from napari_selfsup_denoise import train

    clean, noisy, rng = CASES[a.case]()
    extra = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    axes = "ZYX" if noisy.ndim == 3 else "YX"
    for sec in a.seconds:
        t0 = time.perf_counter()
        model = train(noisy, axes=axes, algorithm=a.algorithm, max_seconds=sec, max_steps=10**7, **extra)
        t1 = time.perf_counter()
        den = model.denoise(noisy, tta=a.tta)
        row = {
            "case": a.case,
            "algorithm": a.algorithm,
            "budget_s": sec,
            "steps": model.summary["steps"],
            "train_s": round(t1 - t0, 1),
            "predict_s": round(time.perf_counter() - t1, 2),
            "psnr_noisy": round(psnr(noisy, clean, rng), 2),
            "psnr": round(psnr(den, clean, rng), 2),
            "device": model.summary["device"],
            "tta": a.tta,
            "set": extra,
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
