"""Where the time goes on a device: blind-spot training steps and one N2V prediction, profiled.

For the prepared GPU check (docs/gpu.md, part ``profile``). It writes one JSON line per
measurement to stdout:

- ``sync``: the host-device synchronisations a few training steps make, counted by the
  project line that made them (``torch.cuda.set_sync_debug_mode("warn")``; CUDA only);
- ``train-profile``: the top operators of a few blind-spot training steps by self device
  time and by self host time, at each batch of ``--batches``;
- ``predict-profile``: the same for one N2V prediction of a ``--size``^2 image.

Usage::

    python benchmarks/gpu_profile.py --device cuda [--batches 4,64] [--steps 10] [--size 2048]
"""

from __future__ import annotations

import argparse
import json
import traceback
import warnings
from collections import Counter
from typing import Any

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

PROJECT = "napari_selfsup_denoise"


def _drain(gen: Any, n: int) -> Any:
    """Advance a training generator ``n`` events; the trained model once it returns, else None."""
    for _ in range(n):
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
    return None


def _top(prof: Any, key: str, n: int = 15) -> list[dict]:
    """The ``n`` operators with the largest ``key`` total (microseconds), with their call counts."""
    rows = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0.0), reverse=True)[:n]
    return [{"op": e.key, "us": round(getattr(e, key, 0.0), 1), "calls": e.count} for e in rows]


def _where() -> str:
    """The innermost project frame of the current stack, as path:line."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        if PROJECT in frame.filename:
            return f"{frame.filename.split(PROJECT)[-1]}:{frame.lineno} {frame.line}"
    return "(outside the project)"


def _config(batch: int, steps: int, device: str) -> Any:
    from napari_selfsup_denoise import TrainConfig

    return TrainConfig(
        algorithm="blindspot", axes="YX", batch_size=batch, max_steps=steps, max_seconds=None, device=device
    )


def sync_sites(batch: int, steps: int, device: str) -> dict:
    """Synchronising calls made by ``steps`` training steps after a warm-up, by project line."""
    from napari_selfsup_denoise.engine.train import train

    img = np.random.default_rng(0).normal(100, 20, (512, 512)).astype(np.float32)
    gen = train(img, _config(batch, 200, device))
    _drain(gen, 5)
    sites: Counter[str] = Counter()
    old = warnings.showwarning
    warnings.showwarning = lambda *a, **k: sites.update([_where()])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            _drain(gen, steps)
            torch.cuda.set_sync_debug_mode(0)
    finally:
        warnings.showwarning = old
        gen.close()
    return {"what": "sync", "batch": batch, "steps": steps, "sites": sites.most_common(20)}


def train_profile(batch: int, steps: int, device: str) -> dict:
    """Top operators of ``steps`` blind-spot training steps after a warm-up."""
    from napari_selfsup_denoise.engine.train import train

    img = np.random.default_rng(0).normal(100, 20, (512, 512)).astype(np.float32)
    gen = train(img, _config(batch, 200, device))
    _drain(gen, 5)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        _drain(gen, steps)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    gen.close()
    return {
        "what": "train-profile",
        "batch": batch,
        "steps": steps,
        "by_device": _top(prof, "self_device_time_total"),
        "by_host": _top(prof, "self_cpu_time_total"),
    }


def predict_profile(size: int, device: str) -> dict:
    """Top operators of one N2V prediction of a ``size``^2 image (after one unprofiled run)."""
    from napari_selfsup_denoise import train

    img = np.random.default_rng(1).normal(100, 20, (size, size)).astype(np.float32)
    model = train(img[:256, :256], axes="YX", algorithm="n2v", max_steps=2, max_seconds=None, device=device)
    model.denoise(img, device=device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        model.denoise(img, device=device)
    return {
        "what": "predict-profile",
        "size": size,
        "by_device": _top(prof, "self_device_time_total"),
        "by_host": _top(prof, "self_cpu_time_total"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", default="4,64")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--size", type=int, default=2048)
    a = p.parse_args()
    batches = [int(b) for b in a.batches.split(",") if b]
    jobs = [(sync_sites, (b, a.steps, a.device)) for b in batches if a.device.startswith("cuda")]
    jobs += [(train_profile, (b, a.steps, a.device)) for b in batches] + [(predict_profile, (a.size, a.device))]
    for fn, args in jobs:  # one failing measurement does not cost the others
        try:
            print(json.dumps(fn(*args)), flush=True)
        except Exception as err:  # noqa: BLE001 - reported, and the next measurement runs
            print(json.dumps({"what": fn.__name__, "args": list(args[:2]), "error": repr(err)}), flush=True)


if __name__ == "__main__":
    main()
