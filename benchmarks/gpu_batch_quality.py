"""The evidence for a GPU default batch: blind-spot quality at batch 4 and at larger batches, fixed steps, 5 seeds.

Issue 12 asks that 30 s of GPU training at the GPU default batch be at least as good as 30 s at batch 4
on ``camera_g25`` and ``nuclei_pg30``. One seed per batch (the first H200 check) is not evidence. This
trains blind-spot from the built-in prior through the library's own API (``bench_robustness.run_one``:
``train`` then ``model.denoise`` with its self-check) for every case, batch and seed, each with a FIXED
number of steps given per (case, batch) on the command line (what a 30-s run reached on the card), so
that several runs can share one GPU as separate processes (``--jobs``) without changing their results.

Writes one JSON line per run (case, batch, lr, steps asked and run, seed, PSNR of what the person gets,
posterior and prior-mean PSNR, the output chosen, the self-check's status, seconds) to ``--jsonl`` as
each run ends, and prints a markdown table of medians and spreads per (case, batch), with the median
over seeds of the paired difference to the smallest batch (same seed). ``--deadline`` stops launching
runs and kills the ones still running at that many seconds, so that the table is still written.

The GPU run (``--steps`` defaults to the steps the 30-s runs reached on the H200, commit 45fb9b3; the batch-64
runs keep the GPU busy, about 19 ms a step there: ~210 s of device time for 5 seeds, so ``--deadline`` may
cut the last seed; runs start seed by seed, so a cut leaves whole early seeds)::

    PYTHONPATH=src python benchmarks/gpu_batch_quality.py --device cuda --jobs 8 --deadline 220 \\
        --jsonl "$OUT/batch_quality.jsonl" --out "$OUT/batch_quality.md"

Those 30-s runs planned their learning-rate schedule for more steps than they ran (each ended 1000 steps
after its best validation): camera_g25 3114 (batch 4) and 1768 (batch 64), nuclei_pg30 3500 and 1769.
``--steps camera_g25:4=3114,camera_g25:64=1768,nuclei_pg30:4=3500,nuclei_pg30:64=1769`` replays their
schedules (``engine/_schedule.py``: a timed run replays as ``max_steps=planned_steps``).

The dry run on a CPU::

    PYTHONPATH=src python benchmarks/gpu_batch_quality.py --device cpu --steps-scale 0.01 --jobs 1 --threads 1 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STEPS = "camera_g25:4=2150,camera_g25:64=1150,nuclei_pg30:4=1050,nuclei_pg30:64=1050"
Job = tuple[str, int, int, int]  # case, batch, steps, seed
COLUMNS = ("case", "batch", "lr / peak lr", "steps asked", "steps run", "runs ok", "median", "min", "max", "spread",
           "posterior (median)", "prior mean (median)", "best step (median)", "prior chosen", "flagged",
           "vs smallest batch, same seed: median (min .. max)", "seconds (median)", "seeds")  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", default=STEPS, help="CASE:BATCH=STEPS,... (the grid: every case and batch named)")
    ap.add_argument("--steps-scale", type=float, default=1.0, help="multiply every step count (dry run: 0.01)")
    ap.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per case and batch")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--jobs", type=int, default=8, help="runs at once, each its own process")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: the CPUs / jobs)")
    ap.add_argument("--deadline", type=float, default=0.0, help="seconds: launch nothing and kill runs after it")
    ap.add_argument("--jsonl", type=Path, help="append every run as a JSON line")
    ap.add_argument("--out", type=Path, help="also write the markdown here")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # a worker: CASE,BATCH,STEPS,SEED
    return ap.parse_args(argv)


def grid(a: argparse.Namespace) -> list[Job]:
    """The runs, interleaved so that large and small batches share the device (seed by seed)."""
    cells = []
    for item in a.steps.split(","):
        key, steps = item.split("=")
        case, batch = key.split(":")
        cells.append((case, int(batch), max(1, round(int(steps) * a.steps_scale))))
    return [(case, batch, steps, seed) for seed in range(a.seeds) for case, batch, steps in cells]


def worker(a: argparse.Namespace) -> None:
    """Train and denoise once (``--one``) and print the row as one JSON line."""
    import torch

    from bench_robustness import run_one

    case, *numbers = a.one.split(",")
    batch, steps, seed = (int(v) for v in numbers)
    ns = argparse.Namespace(steps=steps, seconds=None, crop=0, set=[f"device={json.dumps(a.device)}"],
                            tta=False, keep=None)  # fmt: skip
    t0 = time.perf_counter()
    row = run_one(ns, case, "blindspot", seed, batch)
    card = torch.cuda.get_device_name() if a.device.startswith("cuda") else a.device
    row.update(steps_asked=steps, seconds=round(time.perf_counter() - t0, 1), card=card, status="ok")
    row["self_check"] = "flagged: " + row["suspect"] if row["suspect"] else "passed"
    print(json.dumps(row), flush=True)


def launch(a: argparse.Namespace, job: Job, tmp: Path) -> subprocess.Popen[bytes]:
    """Start one run in its own process; its stdout and stderr go to files in ``tmp``."""
    case, batch, steps, seed = job
    name = f"{case}_b{batch}_s{seed}"
    threads = a.threads or max(1, (os.cpu_count() or 1) // a.jobs)
    env = {**os.environ, "SELFSUP_DENOISE_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--device",
        a.device,
        "--one",
        f"{case},{batch},{steps},{seed}",
    ]
    with (tmp / f"{name}.out").open("wb") as out, (tmp / f"{name}.err").open("wb") as err:
        return subprocess.Popen(cmd, stdout=out, stderr=err, env=env)


def collect(job: Job, proc: subprocess.Popen[bytes], tmp: Path, started: float) -> dict[str, Any]:
    """The run's row; a failed or killed run gives a row that says so, with the end of its error output."""
    case, batch, steps, seed = job
    name = f"{case}_b{batch}_s{seed}"
    lines = (tmp / f"{name}.out").read_text().strip().splitlines()
    if proc.returncode == 0 and lines:
        return dict(json.loads(lines[-1]))
    status = "killed at the deadline" if proc.returncode in (-9, -15) else f"failed (rc {proc.returncode})"
    err = (tmp / f"{name}.err").read_text()[-600:]
    return {"case": case, "batch": batch, "steps_asked": steps, "seed": seed, "status": status,
            "seconds": round(time.monotonic() - started, 1), "error": err}  # fmt: skip


def run_all(a: argparse.Namespace, jobs: list[Job], tmp: Path) -> list[dict[str, Any]]:
    """Run ``jobs`` at most ``a.jobs`` at a time; each row is appended to ``a.jsonl`` as its run ends."""
    t0, rows = time.monotonic(), []
    pending, running = list(jobs), {}
    while pending or running:
        late = a.deadline > 0 and time.monotonic() - t0 > a.deadline
        while pending and len(running) < a.jobs and not late:
            job = pending.pop(0)
            running[job] = (launch(a, job, tmp), time.monotonic())
        ended = []
        for job, (proc, started) in list(running.items()):
            if proc.poll() is None and not late:
                continue
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            ended.append(collect(job, proc, tmp, started))
            del running[job]
        if late:
            ended += [{"case": c, "batch": b, "steps_asked": s, "seed": d, "status": "not run (deadline)"}
                      for c, b, s, d in pending]  # fmt: skip
            pending = []
        for row in ended:
            print(json.dumps(row), file=sys.stderr, flush=True)
            if a.jsonl:
                with a.jsonl.open("a") as f:
                    f.write(json.dumps(row) + "\n")
        rows += ended
        time.sleep(0.2)
    return rows


def _median(rows: list[dict[str, Any]], key: str) -> str:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return f"{statistics.median(vals):.2f}" if vals else "-"


def _range(vals: list[float], fmt: str = ".2f") -> tuple[str, str, str]:
    """Min, max and spread of ``vals`` as text ("-" when empty)."""
    if not vals:
        return "-", "-", "-"
    return format(min(vals), fmt), format(max(vals), fmt), format(max(vals) - min(vals), fmt.lstrip("+"))


def summary_row(rows: list[dict[str, Any]], case: str, batch: int, base: int) -> str:
    """One markdown row: medians, spread and the median paired difference to batch ``base`` (same seeds)."""
    cell = [r for r in rows if r["case"] == case and r["batch"] == batch]
    ok = [r for r in cell if r.get("status") == "ok"]
    vals = [r["psnr"] for r in ok]
    ref = {r["seed"]: r["psnr"] for r in rows if r["case"] == case and r["batch"] == base and r.get("status") == "ok"}
    diffs = [r["psnr"] - ref[r["seed"]] for r in ok if r["seed"] in ref]
    steps = sorted({r["steps"] for r in ok})
    lo, hi, spread = _range(vals)
    d_lo, d_hi, _ = _range(diffs, "+.2f")
    cells = [
        case, str(batch), f"{ok[0]['lr']:.3g} / {ok[0]['peak_lr']:.3g}" if ok else "-", str(cell[0]["steps_asked"]),
        "-".join(map(str, dict.fromkeys([steps[0], steps[-1]]))) if steps else "-", f"{len(ok)}/{len(cell)}",
        _median(ok, "psnr"), lo, hi, spread, _median(ok, "posterior"), _median(ok, "prior"), _median(ok, "best_step"),
        str(sum(r["output"] == "prior" for r in ok)), str(sum(bool(r["suspect"]) for r in ok)),
        f"{statistics.median(diffs):+.2f} ({d_lo} .. {d_hi})" if diffs else "-",
        _median(ok, "seconds"), " ".join(f"{v:.2f}" for v in vals),
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def table(rows: list[dict[str, Any]], command: str, card: str) -> str:
    """The markdown block: the command, the card and one row per case and batch."""
    head = [
        f"Blind-spot quality by batch from the built-in prior, fixed steps per (case, batch), on {card}",
        "",
        f"`{command}`",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    out = []
    for case in sorted({r["case"] for r in rows}):  # (rows come in the order the runs ended)
        batches = sorted({r["batch"] for r in rows if r["case"] == case})
        out += [summary_row(rows, case, b, batches[0]) for b in batches]
    return "\n".join(head + out) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the grid (or, with ``--one``, one run) and print the table."""
    a = parse_args(argv)
    sys.path.insert(0, str(HERE))
    if a.one:
        worker(a)
        return
    command = "python benchmarks/gpu_batch_quality.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run_all(a, grid(a), Path(tmp))
    card = next((r["card"] for r in rows if r.get("card")), a.device)
    md = table(rows, command, card)
    print(md)
    if a.out:
        a.out.write_text(md)


if __name__ == "__main__":
    main()
