"""The prepared GPU check's facts and summary (benchmarks/gpu_check.sh, docs/gpu.md).

Usage::

    python benchmarks/gpu_summary.py env                 # the machine, as JSON on stdout
    python benchmarks/gpu_summary.py summary WORK OUT    # OUT/summary.md and OUT/summary.json

``summary`` reads what the parts left (``WORK/parts.jsonl``, ``WORK/env.json``,
``WORK/quality.md``; ``OUT/tests.log``, ``OUT/train_rate.jsonl``, ``OUT/pipeline.jsonl``,
``OUT/quality.jsonl``) and puts each figure next to the target it answers. A part that
failed or ran out of time shows as such; what it printed before is still summarised.
"""

from __future__ import annotations

import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any


def env() -> dict[str, Any]:
    """The machine: torch, CUDA, the card, the packages that matter, the commit that travelled."""
    import numpy as np
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    info["cpus"] = os.cpu_count()
    info["cuda"] = torch.cuda.is_available()
    if info["cuda"]:
        p = torch.cuda.get_device_properties(0)
        info.update(card=p.name, memory_gib=round(p.total_memory / 2**30, 1), sms=p.multi_processor_count)
        info["cuda_version"] = torch.version.cuda
    try:
        import zarr

        info["zarr"] = zarr.__version__
    except ImportError:
        info["zarr"] = None
    commit = Path(".gpu/commit.txt")
    info["commit"] = commit.read_text().strip() if commit.exists() else None
    return info


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _parts(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| part | result | seconds (limit) |", "|---|---|---|"]
    for r in rows:
        rc = r.get("rc")
        status = r.get("status") or {0: "ok", 124: "timed out", 137: "killed (time)"}.get(rc, f"failed (rc {rc})")
        out.append(f"| {r['part']} | {status} | {r.get('seconds')} ({r.get('limit', '-')}) |")
    return out


def _tests(log: Path) -> list[str]:
    text = log.read_text() if log.exists() else ""
    ends = re.findall(r"^=*\s*(\d+ (?:passed|failed|errors?|skipped|deselected)\b.*?)\s*=*$", text, flags=re.M)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, flags=re.M)
    lines = [f"- pytest run {i + 1}: {e}" for i, e in enumerate(ends)] or ["- no pytest summary line (see tests.log)"]
    return lines + [f"  - {f}" for f in failed]


def _rate(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| batch | patch | Mpx/s | s/step | precision | lr |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("what", "train") != "train":
            continue
        patch = "x".join(str(p) for p in r.get("patch", []))
        out.append(
            f"| {r.get('batch_size')} | {patch} | **{r.get('Mpx_per_s')}** | {r.get('s_per_step')} "
            f"| {r.get('precision')} | {r.get('learning_rate')} |"
        )
    return out + ["", "Target (issue 12): blind-spot training >= 40 Mpx/s at its GPU default."]


def _precision(rows: list[dict[str, Any]]) -> list[str]:
    gains: dict[str, dict[str, list[str]]] = {}
    for r in rows:
        if r.get("what") == "precision":
            flag = " (flagged)" if r.get("suspect") or r.get("check_passed") is False else ""
            gains.setdefault(r["case"], {}).setdefault(r["precision"], []).append(f"{r.get('gain_db')}{flag}")
    means = {(r["case"], r["precision"]): r.get("mean_gain_db") for r in rows if r.get("what") == "precision-mean"}
    out = ["| case | fp32 gains (dB) | bf16 gains (dB) | mean fp32 | mean bf16 |", "|---|---|---|---|---|"]
    for case, by in gains.items():
        out.append(
            f"| {case} | {', '.join(by.get('fp32', []))} | {', '.join(by.get('bf16', []))} "
            f"| {means.get((case, 'fp32'))} | **{means.get((case, 'bf16'))}** |"
        )
    note = "A run marked (flagged) failed its training self-check or gave a suspect result: the user is told."
    return out + ["", note] if gains else ["- no rows (see run.log)"]


def _pipeline(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r.get("row") in ("n2v", "blindspot"):
            out.append(
                f"- {r['row']} {r.get('size')}² {r.get('precision')} tile {r.get('tile', 'auto')}: "
                f"**{r.get('MP_per_s')} MP/s** end to end, "
                f"bare {r.get('bare_MP_per_s')} MP/s, ratio **{r.get('ratio')}** (target >= 0.7)"
            )
        elif r.get("row") == "ceiling-zarr":
            out.append(
                f"- ceiling-zarr {r.get('shape')}: {r.get('MP_per_s')} MP/s, zarr alone "
                f"{r.get('zarr_alone_MP_per_s')} MP/s, ratio **{r.get('ratio')}**, peak RSS {r.get('peak_rss_gb')} GB"
            )
        elif r.get("row") == "n2v-zarr":
            out.append(
                f"- n2v-zarr {r.get('shape')} (tile {r.get('tile')}): **{r.get('MP_per_s')} MP/s** (target >= 150), "
                f"zarr alone {r.get('zarr_alone_MP_per_s')} MP/s (ratio {r.get('ratio')}), bare network "
                f"{r.get('bare_MP_per_s')} MP/s (ratio **{r.get('net_ratio')}**, target >= 0.7), "
                f"peak RSS {r.get('peak_rss_gb')} GB"
            )
        elif r.get("row") == "train-data":
            rates = {k: v for k, v in r.items() if k.endswith("batches_per_s")}
            out.append(f"- train-data (batches/s, host vs device-held data): {json.dumps(rates)}")
    return out or ["- no rows (see run.log)"]


def _quality(rows: list[dict[str, Any]], table: Path) -> list[str]:
    out = [
        "| case | batch | lr | steps | PSNR | posterior | prior mean | output | flagged |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("psnr") is None:  # a run stopped by its deadline or failed: gpu_batch_quality's table counts it
            continue
        out.append(
            f"| {r.get('case')} | {r.get('batch')} | {r.get('lr')} | {r.get('steps')} | **{r.get('psnr')}** "
            f"| {r.get('posterior')} | {r.get('prior')} | {r.get('output')} | {r.get('suspect') or '-'} |"
        )
    if table.exists():
        out += ["", table.read_text()]
    return out


def summary(work: Path, out: Path) -> dict[str, Any]:
    """Write OUT/summary.md and OUT/summary.json; return the JSON."""
    environment = json.loads((work / "env.json").read_text()) if (work / "env.json").exists() else {}
    data = {
        "env": environment,
        "parts": _jsonl(work / "parts.jsonl"),
        "train_rate": _jsonl(out / "train_rate.jsonl"),
        "pipeline": _jsonl(out / "pipeline.jsonl"),
        "quality": _jsonl(out / "quality.jsonl"),
    }
    card = environment.get("card") or "no GPU"
    md = [f"# GPU check: {card}", "", f"`{json.dumps(environment)}`", "", "## Parts", *_parts(data["parts"])]
    md += ["", "## Tests (device paths)", *_tests(out / "tests.log")]
    md += ["", "## Blind-spot training step rate (bench_speed, own defaults)", *_rate(data["train_rate"])]
    md += ["", "## Training precision at equal steps (gpu_precision: the quality tests' runs)"]
    md += _precision(data["train_rate"])
    md += ["", "## Prediction pipeline (bench_pipeline)", *_pipeline(data["pipeline"])]
    md += ["", "## Equal wall-clock quality, camera_g25 and nuclei_pg30, from the prior (bench_robustness)"]
    md += _quality(data["quality"], work / "quality.md")
    (out / "summary.md").write_text("\n".join(md) + "\n")
    (out / "summary.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str]) -> None:
    """``env`` or ``summary WORK OUT``."""
    if argv[:1] == ["env"]:
        print(json.dumps(env()))
    elif argv[:1] == ["summary"] and len(argv) == 3:
        summary(Path(argv[1]), Path(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
