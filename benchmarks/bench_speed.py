"""Training and prediction throughput.

Training: patch pixels per second at CAREamics' default N2V network and batch
(U-Net depth 2, 32 channels, batch 128 x 64^2) unless overridden; ``--own-defaults``
uses the algorithm's own defaults instead (the blind-spot net: depth 2, 24 channels,
96^2 patches), and ``--batches`` times several batch sizes, one JSON line each.
A step is timed from one read of the loss to a later one: on CUDA the training
loop waits for the device only every ``SYNC_EVERY`` steps, so the time between
two reads covers whole steps, not just their launches. Prediction: megapixels per
second on a 2048 x 2048 image with automatic tiles. ``--only ops``: the aten operators of one
training step (forward and backward of the method's loss, under the run's autocast) per batch size,
counted with their output bytes (copies, concatenations, cuts' backward, casts; any device).

Usage::

    python benchmarks/bench_speed.py [--algorithm n2v] [--steps 12] [--set key=value ...] [--precision auto]
    python benchmarks/bench_speed.py --algorithm blindspot --own-defaults --batches 4,16,64,256 --only train
    python benchmarks/bench_speed.py --algorithm blindspot --own-defaults --batches 64 --only ops --device cuda
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
import time

import numpy as np


def train_rate(
    algorithm: str, steps: int, precision: str, extra: dict, device: str = "auto", own: bool = False
) -> dict:
    """Seconds per step (after a warm-up) and patch megapixels per second, timed between two reads of the loss."""
    from napari_selfsup_denoise import TrainConfig
    from napari_selfsup_denoise.engine.device import pick_device
    from napari_selfsup_denoise.engine.train import SYNC_EVERY, train

    cfg = {} if own else dict(depth=2, base_channels=32, batch_size=128, patch_size=64)
    cfg.update(val_fraction=0.0, **extra)
    every = SYNC_EVERY.get(pick_device(device).type, 1)
    warm, n = every * -(-3 // every), every * -(-steps // every)  # both end on a read of the loss
    img = np.random.default_rng(0).normal(100, 20, (512, 512)).astype(np.float32)
    config = TrainConfig(
        algorithm=algorithm, axes="YX", max_steps=warm + n, max_seconds=None, precision=precision, device=device, **cfg
    )
    stamps, gen = {}, train(img, config)
    while True:
        try:
            stamps[next(gen).step] = time.perf_counter()
        except StopIteration as stop:
            model = stop.value
            break
    s = (stamps[warm + n] - stamps[warm]) / n
    per_step = [stamps[i + 1] - stamps[i] for i in range(warm, warm + n)]
    px = model.config.batch_size * math.prod(model.summary["patch"])
    return {
        "what": "train",
        "algorithm": algorithm,
        "device": model.summary["device"],
        "s_per_step": round(s, 5),
        "median_s_per_step": round(statistics.median(per_step), 5) if every == 1 else None,
        "Mpx_per_s": round(px / s / 1e6, 3),
        "steps_timed": n,
        "batch_size": model.config.batch_size,
        "patch": model.summary["patch"],
        "depth": model.config.depth,
        "base_channels": model.config.base_channels,
        "learning_rate": model.config.learning_rate,
        "precision": precision,
    }


OPS = ("copy_", "_to_copy", "cat", "add_", "add", "slice_backward", "rot90", "flip", "upsample_nearest2d", "clone")


def step_ops(algorithm: str, batch: int, precision: str, extra: dict, device: str = "auto", own: bool = False) -> dict:
    """Calls and output megabytes of each aten operator in one training step (after a warm-up step)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from napari_selfsup_denoise import TrainConfig
    from napari_selfsup_denoise.config import resolve_defaults
    from napari_selfsup_denoise.engine.device import autocast, pick_device, resolve_precision
    from napari_selfsup_denoise.engine.methods import get_method

    cfg = {} if own else dict(depth=2, base_channels=32, patch_size=64)
    cfg.update(extra, batch_size=batch)
    config = resolve_defaults(TrainConfig(algorithm=algorithm, axes="YX", **cfg), 2)
    dev = pick_device(device)
    dtype = resolve_precision(precision, dev)
    method = get_method(config)
    net = method.build(2, 1).to(dev).to(memory_format=torch.channels_last).train()
    edge = config.patch_size
    x = torch.randn(batch, 1, edge, edge, device=dev).contiguous(memory_format=torch.channels_last)
    calls: dict[str, list[float]] = {}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            row = calls.setdefault(func.overloadpacket.__name__, [0, 0.0])
            row[0] += 1
            for t in out if isinstance(out, tuple | list) else (out,):
                row[1] += t.numel() * t.element_size() / 2**20 if isinstance(t, torch.Tensor) else 0
            return out

    gen = torch.Generator(device=dev).manual_seed(0)
    for counted in (False, True):
        net.zero_grad(set_to_none=True)
        with Count() if counted else contextlib.nullcontext():
            with autocast(dev, dtype):
                loss = method.loss(net, x, None, gen)
            loss.backward()
    total = sum(c[1] for c in calls.values())
    return {
        "what": "ops",
        "algorithm": algorithm,
        "device": str(dev),
        "dtype": str(dtype).replace("torch.", ""),
        "batch_size": batch,
        "patch": edge,
        "ops": {k: [int(calls[k][0]), round(calls[k][1], 1)] for k in OPS if k in calls},
        "all_ops": [int(sum(c[0] for c in calls.values())), round(total, 1)],
    }


def predict_rate(
    algorithm: str, precision: str, extra: dict, size: int = 2048, reps: int = 3, device: str = "auto"
) -> dict:
    """Median megapixels per second over ``reps`` predictions of a ``size``^2 image."""
    from napari_selfsup_denoise import train

    cfg = dict(depth=2, base_channels=32)
    cfg.update(extra)
    img = np.random.default_rng(1).normal(100, 20, (size, size)).astype(np.float32)
    model = train(img[:256, :256], axes="YX", algorithm=algorithm, max_steps=2, max_seconds=None, device=device, **cfg)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        model.denoise(img, precision=precision, device=device)
        times.append(time.perf_counter() - t0)
    s = statistics.median(times)
    return {
        "what": "predict",
        "algorithm": algorithm,
        "device": device,
        "s": round(s, 3),
        "MP_per_s": round(size * size / s / 1e6, 3),
        "precision": precision,
        **cfg,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algorithm", default="n2v")
    p.add_argument("--steps", type=int, default=12, help="timed steps (rounded up to whole reads of the loss)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    p.add_argument("--device", default="auto")
    p.add_argument("--only", choices=["train", "predict", "ops"])
    p.add_argument("--own-defaults", action="store_true", help="train at the algorithm's defaults, not CAREamics'")
    p.add_argument("--batches", default="", help="comma-separated batch sizes to time (one line each)")
    p.add_argument("--size", type=int, default=2048, help="prediction image edge")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    a = p.parse_args()
    from bench_n2v import parse_value

    extra = {k: parse_value(v) for k, v in (s.split("=", 1) for s in a.set)}
    if a.only == "ops":
        for b in [int(b) for b in a.batches.split(",") if b] or [8]:
            print(json.dumps(step_ops(a.algorithm, b, a.precision, extra, a.device, a.own_defaults)), flush=True)
        return
    if a.only != "predict":
        for b in [int(b) for b in a.batches.split(",") if b] or [None]:
            more = extra if b is None else {**extra, "batch_size": b}
            print(json.dumps(train_rate(a.algorithm, a.steps, a.precision, more, a.device, a.own_defaults)), flush=True)
    if a.only != "train":
        pextra = {k: v for k, v in extra.items() if k in ("depth", "base_channels")}
        print(json.dumps(predict_rate(a.algorithm, a.precision, pextra, a.size, device=a.device)), flush=True)


if __name__ == "__main__":
    main()
