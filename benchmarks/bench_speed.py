"""Training and prediction throughput.

Training: patch pixels per second at CAREamics' default N2V network and batch
(U-Net depth 2, 32 channels, batch 128 x 64^2) unless overridden. Prediction:
megapixels per second on a 2048 x 2048 image with automatic tiles.

Usage::

    python benchmarks/bench_speed.py [--algorithm n2v] [--steps 12] [--set key=value ...] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np


def train_rate(algorithm: str, steps: int, precision: str, extra: dict) -> dict:
    """Median seconds per step (after 3 warm-up steps) and patch megapixels per second."""
    from napari_selfsup_denoise import TrainConfig
    from napari_selfsup_denoise.engine.train import train

    cfg = dict(depth=2, base_channels=32, batch_size=128, patch_size=64, val_fraction=0.0)
    cfg.update(extra)
    img = np.random.default_rng(0).normal(100, 20, (512, 512)).astype(np.float32)
    config = TrainConfig(
        algorithm=algorithm, axes="YX", max_steps=steps + 3, max_seconds=None, precision=precision, **cfg
    )
    times, last = [], time.perf_counter()
    for ev in train(img, config):
        now = time.perf_counter()
        if ev.step > 3:
            times.append(now - last)
        last = now
    s = statistics.median(times)
    px = cfg["batch_size"] * cfg["patch_size"] ** 2
    return {
        "what": "train",
        "algorithm": algorithm,
        "s_per_step": round(s, 4),
        "Mpx_per_s": round(px / s / 1e6, 3),
        "precision": precision,
        **cfg,
    }


def predict_rate(algorithm: str, precision: str, extra: dict, size: int = 2048, reps: int = 3) -> dict:
    """Median megapixels per second over ``reps`` predictions of a ``size``^2 image."""
    from napari_selfsup_denoise import train

    cfg = dict(depth=2, base_channels=32)
    cfg.update(extra)
    img = np.random.default_rng(1).normal(100, 20, (size, size)).astype(np.float32)
    model = train(img[:256, :256], axes="YX", algorithm=algorithm, max_steps=2, max_seconds=None, **cfg)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model.denoise(img, precision=precision)
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    return {
        "what": "predict",
        "algorithm": algorithm,
        "s": round(s, 3),
        "MP_per_s": round(size * size / s / 1e6, 3),
        "precision": precision,
        **cfg,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithm", default="n2v")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--only", choices=["train", "predict"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    from bench_n2v import parse_value

    extra = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    if a.only != "predict":
        print(json.dumps(train_rate(a.algorithm, a.steps, a.precision, extra)), flush=True)
    if a.only != "train":
        pextra = {k: v for k, v in extra.items() if k in ("depth", "base_channels")}
        print(json.dumps(predict_rate(a.algorithm, a.precision, pextra)), flush=True)


if __name__ == "__main__":
    main()
