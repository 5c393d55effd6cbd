"""The built-in prior on the development cases: zero-shot, and fine-tuning from it against random weights.

Usage::

    # zero-shot (no training): PSNR and the wall time of denoise(image), prior loading included
    python benchmarks/bench_prior.py zero-shot --cases camera_g25 nuclei_pg30 --threads 2
    # fine-tuning from the prior vs random weights, at equal step (or time) budgets, several seeds
    python benchmarks/bench_prior.py finetune --cases camera_g25 nuclei_pg30 --steps 100 300 --seeds 0 1 2
    python benchmarks/bench_prior.py finetune --seconds 60 --seeds 0 1 2 --threads 2     # timed: a quiet machine
    python benchmarks/bench_prior.py finetune --cases nuclei3d --seconds 60 --algorithm n2v --starts random  # reference

Prints one JSON line per run, then the median per case, budget and start. The noise
parameters are never given; the self-check runs as in any use (a suspect posterior
falls back to the prior mean, and ``check`` says so).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES  # noqa: E402
from napari_selfsup_denoise.metrics import psnr  # noqa: E402


def _check(model) -> str:
    decision = model.last_check
    if decision is None or not decision.messages():
        return "passed"
    return "fell back to the prior mean" if decision.fell_back and not decision.suspect else "suspect"


def zero_shot(case: str) -> dict:
    """Zero-shot denoising of one case; the time covers everything ``denoise(image)`` does."""
    from napari_selfsup_denoise.prior import zero_shot_model

    clean, noisy, rng = CASES[case]()
    axes = "ZYX" if noisy.ndim == 3 else "YX"
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zero_shot_model(noisy, axes)
        out = model.denoise(noisy, axes)
    seconds = time.perf_counter() - t0
    prior = model.denoise(noisy, axes, output="prior", check=False)
    noise = {k: v for k, v in model.summary.items() if k.startswith(("noise", "classical"))}
    return {"case": case, "mode": "zero-shot", "noisy": round(psnr(noisy, clean, rng), 2),
            "psnr": round(psnr(out, clean, rng), 2), "prior_mean": round(psnr(prior, clean, rng), 2),
            "seconds": round(seconds, 2), "check": _check(model), **noise}  # fmt: skip


def finetune(case: str, start: str, seed: int, steps: int | None, seconds: float | None, algorithm: str) -> dict:
    """Training from ``start`` (builtin / random) at a step or time budget, then the denoised image."""
    from napari_selfsup_denoise import train

    clean, noisy, rng = CASES[case]()
    axes = "ZYX" if noisy.ndim == 3 else "YX"
    budget = {"max_steps": steps, "max_seconds": None} if steps else {"max_steps": 10**7, "max_seconds": seconds}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = train(noisy, axes=axes, algorithm=algorithm, seed=seed, start_from=start, **budget)
        out = model.denoise(noisy)
    s = model.summary
    return {"case": case, "mode": "finetune", "algorithm": model.algorithm, "start": s["start"]["kind"], "seed": seed,
            "budget": f"{steps} steps" if steps else f"{seconds:g} s", "steps": s["steps"], "seconds": s["seconds"],
            "psnr": round(psnr(out, clean, rng), 2), "check": _check(model)}  # fmt: skip


def _medians(rows: list[dict]) -> None:
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["case"], r.get("budget", "-"), r.get("algorithm", ""), r.get("start", "zero-shot"))
        groups.setdefault(key, []).append(r["psnr"])
    for (case, budget, algorithm, start), vals in groups.items():
        med = statistics.median(vals)
        print(f"# {case:12s} {budget:>10s} {algorithm:9s} {start:10s} median {med:.2f} dB of {vals}")


def main() -> None:
    """Parse arguments, run, print JSON lines and medians."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["zero-shot", "finetune"])
    ap.add_argument("--cases", nargs="+", default=["camera_g25", "nuclei_pg30"], choices=sorted(CASES))
    ap.add_argument("--steps", nargs="*", type=int, default=[], help="step budgets (finetune)")
    ap.add_argument("--seconds", nargs="*", type=float, default=[], help="time budgets (finetune)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--starts", nargs="+", default=["builtin", "random"])
    ap.add_argument("--algorithm", default="blindspot", help="finetune: blindspot (default), or e.g. n2v as reference")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    os.environ["SELFSUP_DENOISE_THREADS"] = str(args.threads)
    rows = []
    for case in args.cases:
        if args.mode == "zero-shot":
            rows.append(zero_shot(case))
            print(json.dumps(rows[-1]), flush=True)
            continue
        budgets = [(n, None) for n in args.steps] + [(None, s) for s in args.seconds]
        for steps, seconds in budgets or [(300, None)]:
            for start in args.starts:
                for seed in args.seeds:
                    rows.append(finetune(case, start, seed, steps, seconds, args.algorithm))
                    print(json.dumps(rows[-1]), flush=True)
    _medians(rows)


if __name__ == "__main__":
    main()
