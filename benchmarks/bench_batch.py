"""Batch denoising at scale: peak RSS and megapixels/s on generated uint16 Zarr stacks.

Generates ``(N, 2048, 2048)`` uint16 Zarr stacks of the given sizes (streamed,
chunk by chunk), trains a small model on the first planes, then times
``selfsup-denoise denoise`` on each stack in a subprocess (``--accept-suspect``: the
model's quality is not what is measured) (single process, and
``--dask local:N`` when asked) while sampling the resident memory of the whole
process tree every 0.1 s. Prints a Markdown table for docs/benchmarks.md.

Example (the issue's benchmark; needs ~10 GB of disk)::

    python benchmarks/bench_batch.py --gb 1 4 --dask 2 --workdir /scratch/bench

A quick check (seconds)::

    python benchmarks/bench_batch.py --gb 0.02 0.04 --edge 512
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def make_stack(path: Path, gb: float, edge: int) -> tuple[int, ...]:
    """Write a noisy uint16 ``(N, edge, edge)`` Zarr v3 array of about ``gb`` GB, plane by plane."""
    import zarr

    n = max(1, round(gb * 1e9 / (edge * edge * 2)))
    if path.exists():
        arr = zarr.open_array(str(path), mode="r")
        if arr.shape == (n, edge, edge):
            return arr.shape
    arr = zarr.create_array(str(path), shape=(n, edge, edge), chunks=(1, 512, 512), dtype="uint16",
                            dimension_names=["t", "y", "x"], overwrite=True)  # fmt: skip
    y, x = np.mgrid[0:edge, 0:edge].astype(np.float32)
    clean = 1000 + 500 * np.sin(x / 23) * np.cos(y / 31)
    rng = np.random.default_rng(0)
    for i in range(n):
        arr[i] = np.clip(clean + rng.normal(0, 80, clean.shape), 0, 65535).astype(np.uint16)
    return arr.shape


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def timed_denoise(model: Path, src: Path, out: Path, extra: list[str]) -> tuple[float, int]:
    """Run the CLI; return (seconds, peak RSS of the process tree in bytes)."""
    cmd = [sys.executable, "-m", "napari_selfsup_denoise.cli", "denoise", "-m", str(model), str(src),
           "-o", str(out), "--overwrite", "--quiet", "--accept-suspect", *extra]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak = [0]

    def watch() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            time.sleep(0.1)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    rc = proc.wait()
    th.join()
    if rc != 0:
        raise SystemExit(f"denoise failed with exit code {rc}: {' '.join(cmd)}")
    return time.perf_counter() - t0, peak[0]


def main() -> None:
    """Parse arguments, generate the stacks, train once, measure each configuration."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gb", type=float, nargs="+", default=[1.0, 4.0], help="stack sizes in GB (uint16)")
    ap.add_argument("--edge", type=int, default=2048, help="plane edge in pixels")
    ap.add_argument("--dask", type=int, default=0, help="also run with --dask local:N (0: skip)")
    ap.add_argument("--workdir", type=Path, default=Path("bench-batch"), help="where stacks and outputs go")
    ap.add_argument("--steps", type=int, default=200, help="training steps of the model used")
    ap.add_argument("--algorithm", default="n2v", help="algorithm of the model used (memory does not depend on it)")
    ap.add_argument("--tile", type=int, default=None, help="passed to denoise --tile")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to train (model size)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    stacks = {gb: args.workdir / f"stack_{gb:g}GB.zarr" for gb in args.gb}
    shapes = {gb: make_stack(p, gb, args.edge) for gb, p in stacks.items()}
    model = args.workdir / "bench.sdmodel"
    if not model.exists():
        first = stacks[args.gb[0]]
        subprocess.run([sys.executable, "-m", "napari_selfsup_denoise.cli", "train", str(first), "-o", str(model),
                        "--steps", str(args.steps), "--max-seconds", "120", "--quiet", "--accept-suspect",
                        "--algorithm", args.algorithm,
                        *[f"--set={kv}" for kv in args.set]], check=True)  # fmt: skip
    extra = ["--tile", str(args.tile)] if args.tile else []
    runs = [("single process", extra)] + ([(f"--dask local:{args.dask}", [*extra, "--dask", f"local:{args.dask}"])]
                                          if args.dask else [])  # fmt: skip
    print("| stack | shape | mode | seconds | MP/s | peak RSS (GB) |\n|---|---|---|---|---|---|")
    for gb, src in stacks.items():
        mp = int(np.prod(shapes[gb])) / 1e6
        for name, ex in runs:
            secs, rss = timed_denoise(model, src, args.workdir / f"out_{gb:g}GB.zarr", ex)
            print(f"| {gb:g} GB | {shapes[gb]} | {name} | {secs:.1f} | {mp / secs:.2f} | {rss / 1e9:.2f} |", flush=True)


if __name__ == "__main__":
    main()
