"""Run the benchmark suite and print markdown tables (``make bench``).

Runs, one after the other (never in parallel: the timings would lie):

- N2V and N2V2 PSNR at 30/60/120 s on camera_g25 and nuclei_pg30 (bench_n2v.py)
- blind-spot PSNR at 30/60/120 s on camera_g25, nuclei_pg30, and the 3D stack (bench_blindspot.py)
- training and prediction throughput (bench_speed.py)

Raw results go to ``OUT/results.jsonl``; the tables are printed and written to
``OUT/tables.md``. ``--quick`` uses 10 s budgets, to check that everything runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(args: list[str], sink: list[dict]) -> None:
    """Run one benchmark script and collect its JSON lines."""
    print("$ python", " ".join(args), flush=True)
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=HERE)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            row["command"] = "python benchmarks/" + " ".join(args)
            sink.append(row)
            print("  ", line, flush=True)


def tables(rows: list[dict]) -> str:
    """Markdown tables of the collected rows."""
    out = ["| case | algorithm | budget (s) | steps | PSNR (dB) | prior μ (dB) |", "|---|---|---|---|---|---|"]
    for r in rows:
        if "psnr" in r or "posterior" in r:
            psnr = r.get("psnr", r.get("posterior"))
            out.append(
                f"| {r.get('case')} | {r.get('algorithm', 'blindspot')} | {r.get('budget_s')} "
                f"| {r.get('steps')} | {psnr} | {r.get('prior', '')} |"
            )
    out += ["", "| what | algorithm | rate | precision |", "|---|---|---|---|"]
    for r in rows:
        if r.get("what") == "train":
            out.append(
                f"| training | {r['algorithm']} | {r['Mpx_per_s']} Mpx/s ({r['s_per_step']} s/step) "
                f"| {r['precision']} |"
            )
        elif r.get("what") == "predict":
            out.append(f"| prediction 2048² | {r['algorithm']} | {r['MP_per_s']} MP/s | {r['precision']} |")
    return "\n".join(out) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-output")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    secs = ["10"] if a.quick else ["30", "60", "120"]
    rows: list[dict] = []
    for case in ("camera_g25", "nuclei_pg30"):
        for algo in ("n2v", "n2v2"):
            run(["bench_n2v.py", "--case", case, "--algorithm", algo, "--seconds", *secs], rows)
        for s in secs:
            run(["bench_blindspot.py", "--case", case, "--seconds", s], rows)
    run(["bench_blindspot.py", "--case", "nuclei3d", "--seconds", secs[-1]], rows)
    run(["bench_speed.py", "--steps", "4" if a.quick else "12"], rows)
    run(
        [
            "bench_speed.py",
            "--algorithm",
            "blindspot",
            "--steps",
            "3" if a.quick else "8",
            "--set",
            "batch_size=16",
            "--set",
            "depth=3",
            "--set",
            "base_channels=32",
        ],
        rows,
    )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "results.jsonl", "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    md = tables(rows)
    (out / "tables.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
