"""Blind-spot robustness: seeds x batch sizes x cases at one budget, against our N2V at the same budget.

Not a test. Runs one training at a time (timings lie in parallel) and prints a markdown
table: per case and batch, the median, min, max and spread (max - min) of the PSNR of
what the person gets (``model.denoise`` with its self-check: the prior mean when the
posterior is suspect or its estimated error is the smaller), the medians of the
posterior and of the prior mean of the same models (whichever was returned), how often
the prior mean was chosen without a failed check, how many seeds the self-check
flagged, and the worst seed minus the N2V median. The command line is printed above
the table.

Usage (the timed run for a quiet machine, ~8 minutes on 2 cores)::

    python benchmarks/bench_robustness.py --seconds 60 --seeds 3 --cases camera_g25,nuclei_pg30

Step budgets are reproducible under load (use them on a shared machine)::

    python benchmarks/bench_robustness.py --steps 170 --seeds 3 --batches 4,16,64 --crop 256 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES  # noqa: E402

CASES_2D = [name for name in CASES if name != "nuclei3d"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; exactly one of ``--steps`` / ``--seconds``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    budget = ap.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int, help="step budget (reproducible under load)")
    budget.add_argument("--seconds", type=float, help="wall-clock budget (quiet machine only)")
    ap.add_argument("--cases", default="camera_g25,nuclei_pg30", help=f"comma-separated, from {CASES_2D}")
    ap.add_argument("--seeds", type=int, default=3, help="blind-spot seeds 0..N-1 per case and batch")
    ap.add_argument("--batches", default="", help="comma-separated batch sizes (default: the algorithm's)")
    ap.add_argument("--n2v-seeds", type=int, default=1, help="N2V seeds per case (0 skips N2V)")
    ap.add_argument("--crop", type=int, default=0, help="central crop edge in pixels (0: the whole image)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tta", action="store_true", help="8-fold test-time augmentation at prediction")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="TrainConfig override")
    ap.add_argument("--jsonl", type=Path, help="append every run as a JSON line")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    ap.add_argument("--keep", type=Path, help="save every trained model in this folder (to inspect later)")
    a = ap.parse_args(argv)
    unknown = sorted(set(a.cases.split(",")) - set(CASES_2D))
    if unknown:
        ap.error(f"unknown case(s) {unknown}; choose from {CASES_2D}")
    return a


def load_case(name: str, crop: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Clean, noisy and data range of a case, centrally cropped to ``crop`` pixels when > 0."""
    clean, noisy, data_range = CASES[name]()
    if crop:
        y0, x0 = ((s - min(crop, s)) // 2 for s in clean.shape)
        clean, noisy = clean[y0 : y0 + crop, x0 : x0 + crop], noisy[y0 : y0 + crop, x0 : x0 + crop]
    return np.ascontiguousarray(clean), np.ascontiguousarray(noisy), data_range


def run_one(a: argparse.Namespace, case: str, algorithm: str, seed: int, batch: int | None) -> dict[str, Any]:
    """Train once, denoise with the self-check, return the row (blind-spot: both outputs' PSNR too)."""
    from napari_selfsup_denoise import train
    from napari_selfsup_denoise.engine._training import peak_rate
    from napari_selfsup_denoise.metrics import psnr

    clean, noisy, data_range = load_case(case, a.crop)
    extra = {k: json.loads(v) for k, v in (s.split("=", 1) for s in a.set)}
    if batch is not None:
        extra["batch_size"] = batch
    budget = {"max_steps": a.steps, "max_seconds": None} if a.steps else {"max_steps": 10**7, "max_seconds": a.seconds}
    t0 = time.perf_counter()
    model = train(noisy, axes="YX", algorithm=algorithm, seed=seed, **budget, **extra)
    t1 = time.perf_counter()
    if a.keep:
        a.keep.mkdir(parents=True, exist_ok=True)
        model.save(a.keep / f"{case}_{algorithm}_s{seed}_b{model.config.batch_size}_{a.steps or a.seconds}.sdmodel")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the decision is read from model.last_check below
        den = model.denoise(noisy, tta=a.tta)
    decision = model.last_check
    checks = (decision.trained, decision.image)
    flagged = sorted({c.suspect or "yes" for c in checks if c is not None and not c.passed})
    row = {
        "case": case,
        "algorithm": algorithm,
        "seed": seed,
        "batch": model.config.batch_size,
        "lr": model.config.learning_rate,
        "peak_lr": peak_rate(model.config, model.summary["planned_steps"]),  # the peak rule may lower "lr"
        "steps": model.summary["steps"],
        "planned_steps": model.summary.get("planned_steps"),  # a timed run replays as --steps PLANNED (same seed)
        "best_step": model.summary.get("best_step"),
        "train_s": round(t1 - t0, 1),
        "noisy": round(psnr(noisy, clean, data_range), 2),
        "psnr": round(psnr(den, clean, data_range), 2),
        "suspect": ",".join(flagged),
        "output": decision.output,
        "noise": {k: v for k, v in model.summary.items() if k.startswith("noise_") and k != "noise_model"},
    }
    if algorithm == "blindspot":  # both outputs of the same model, whatever was returned
        for out in ("posterior", "prior"):
            row[out] = round(psnr(model.denoise(noisy, tta=a.tta, output=out, check=False), clean, data_range), 2)
        row["choice"] = decision.choice.to_dict() if decision.choice is not None else None
    return row


def summarise(rows: list[dict[str, Any]], case: str, batch: int) -> str:
    """One markdown row for a case and batch."""
    bs = [r for r in rows if r["case"] == case and r["algorithm"] == "blindspot" and r["batch"] == batch]
    n2v = [r["psnr"] for r in rows if r["case"] == case and r["algorithm"] == "n2v"]
    vals = [r["psnr"] for r in bs]
    ref = statistics.median(n2v) if n2v else float("nan")
    flags = sum(bool(r["suspect"]) for r in bs)
    steps = sorted({r["steps"] for r in bs})
    chose = sum(r["output"] == "prior" and not r["suspect"] for r in bs)
    cells = [
        case,
        str(batch),
        f"{bs[0]['lr']:.2g}",
        f"{steps[0]}-{steps[-1]}" if len(steps) > 1 else str(steps[0]),
        f"{statistics.median(vals):.2f}",
        f"{min(vals):.2f}",
        f"{max(vals):.2f}",
        f"{max(vals) - min(vals):.2f}",
        f"{statistics.median(r['posterior'] for r in bs):.2f}",
        f"{statistics.median(r['prior'] for r in bs):.2f}",
        f"{chose}/{len(bs)}",
        f"{flags}/{len(bs)}",
        f"{ref:.2f}",
        f"{min(vals) - ref:+.2f}",
        " ".join(f"{v:.2f}" for v in vals),
    ]
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict[str, Any]], command: str, a: argparse.Namespace) -> str:
    """The markdown block: budget, command and one row per case and batch."""
    budget = f"{a.steps} steps" if a.steps else f"{a.seconds:g} s"
    head = [
        f"Blind-spot robustness, {budget}, {a.threads} thread(s), {a.seeds} seeds"
        + (f", {a.crop}² central crops" if a.crop else ", whole images")
        + (", 8-fold TTA" if a.tta else ""),
        "",
        f"`{command}`",
        "",
        "| case | batch | lr | steps | median | min | max | spread | posterior (median) | prior mean (median) "
        "| prior chosen | flagged | N2V (median) | worst - N2V | seeds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(r["case"], r["batch"]) for r in rows if r["algorithm"] == "blindspot"})
    return "\n".join(head + [summarise(rows, c, b) for c, b in keys]) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the grid and print the table."""
    a = parse_args(argv)
    os.environ["SELFSUP_DENOISE_THREADS"] = str(a.threads)
    command = "python benchmarks/bench_robustness.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    batches: list[int | None] = [int(b) for b in a.batches.split(",") if b] or [None]
    rows: list[dict[str, Any]] = []
    for case in a.cases.split(","):
        plan = [("n2v", s, None) for s in range(a.n2v_seeds)]
        plan += [("blindspot", s, b) for b in batches for s in range(a.seeds)]
        for algorithm, seed, batch in plan:
            row = run_one(a, case, algorithm, seed, batch)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if a.jsonl:
                with a.jsonl.open("a") as f:
                    f.write(json.dumps(row) + "\n")
    md = table(rows, command, a)
    print(md)
    if a.out:
        a.out.write_text(md)


if __name__ == "__main__":
    main()
