"""What a 3D run on the 3D sample costs: training steps, one live preview, the end of training, denoising the stack.

Counts floating-point operations (``torch.utils.flop_counter``, the same on any
machine and under any load) and, with ``--time``, wall-clock seconds on this
machine. Each row is one algorithm with the 3D defaults (or ``--set`` overrides)
on the plugin's *Noisy nuclei stack (3D)* sample (32 x 192 x 192), started as the
widget and the command line start it (blind-spot: from the built-in 3D prior).
The end of training is measured as after a user's Stop: the self-check and, when
there are validated weights to choose from, the final validation (3D blind-spot:
a second self-check instead, ``engine/_check_pick.py``) (``*_end_of_training``),
then the self-check of the model on the image that
denoising starts with (``*_image_check``).

Usage::

    SELFSUP_DENOISE_THREADS=1 python benchmarks/bench_3d.py                 # operations only
    SELFSUP_DENOISE_THREADS=1 python benchmarks/bench_3d.py --time          # + seconds (quiet machine)
    python benchmarks/bench_3d.py --algorithm n2v --set batch_size=4 --set patch_size=32
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

import numpy as np


def _drain(gen: Any) -> tuple[list[Any], Any]:
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as end:
            return events, end.value


def _count_onednn() -> None:
    """Count the 3D convolutions ``engine/_fast_conv.py`` hands straight to oneDNN (not through aten.convolution)."""
    import torch
    from torch.utils.flop_counter import conv_flop_count, flop_registry, register_flop_formula

    op = torch.ops.aten.mkldnn_convolution
    if op in flop_registry or op.default in flop_registry:
        return

    @register_flop_formula(op)
    def _flop(x_shape: Any, w_shape: Any, *_args: Any, out_shape: Any = None, **_kw: Any) -> int:
        return conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


def _counted(func: Any) -> tuple[float, float, Any]:
    """(GFLOP, seconds, result) of ``func()`` (matmul and convolution operations, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    _count_onednn()
    counter = FlopCounterMode(display=False)
    t = time.perf_counter()
    with counter:
        res = func()
    return counter.get_total_flops() / 1e9, time.perf_counter() - t, res


def measure(algorithm: str, extra: dict[str, Any], steps: int, timed: bool) -> dict[str, Any]:
    """Operations (and seconds) per training step, per preview and for denoising the sample."""
    from napari_selfsup_denoise import TrainConfig
    from napari_selfsup_denoise._sample_data import noisy_nuclei_3d
    from napari_selfsup_denoise.config import PredictConfig, resolve_defaults
    from napari_selfsup_denoise.engine._training import preview_now
    from napari_selfsup_denoise.engine.checks import decide
    from napari_selfsup_denoise.engine.predict import predict
    from napari_selfsup_denoise.engine.train import train
    from napari_selfsup_denoise.prior import resolve_start

    data = noisy_nuclei_3d()[0][0]
    cfg = TrainConfig(axes="ZYX", algorithm=algorithm, max_steps=steps, max_seconds=None, seed=0, **extra)
    r = resolve_defaults(cfg, 3)
    start = resolve_start(cfg, tuple(data.shape))  # as the widget and the CLI start (blind-spot: the 3D prior)
    stop = threading.Event()
    gen = train(data, cfg.replace(max_steps=steps + 2), stop=stop, start=start)  # no step budget's end inside
    next(gen)  # setup and a warm-up step (allocations, kernels) outside the figures
    gflop, secs, _ = _counted(lambda: [next(gen) for _ in range(steps)])
    stop.set()  # as a user's Stop: the final validation and the self-check follow
    end_gflop, end_secs, (_, model) = _counted(lambda: _drain(gen))
    ck_gflop, ck_secs, _ = _counted(lambda: decide(model, data, "ZYX"))
    row: dict[str, Any] = {
        "algorithm": algorithm,
        "start": start.source.get("name") or start.source.get("kind"),
        "batch": r.batch_size,
        "patch": f"{r.patch_size_z}x{r.patch_size}x{r.patch_size}",
        "depth": r.depth,
        "channels": r.base_channels,
        "margin": model.margin,
        "gflop_per_step": round(gflop / steps, 2),
        "gflop_end_of_training": round(end_gflop, 2),
        "gflop_image_check": round(ck_gflop, 2),
        "end_in_steps": round((end_gflop + ck_gflop) / max(gflop / steps, 1e-9), 2),
        "check_pixels": model.check.pixels if model.check else 0,
    }
    slab = data[8:24, 32:288, 32:288]  # what the widget hands the preview: 16 planes x up to 256 x 256
    device = next(model.net.parameters()).device
    pv_gflop, pv_secs, _ = _counted(lambda: preview_now(model, slab, device))
    dn_gflop, dn_secs, _ = _counted(lambda: _drain(predict(model, data, PredictConfig(), axes="ZYX")))
    row |= {"gflop_preview": round(pv_gflop, 2), "gflop_denoise": round(dn_gflop, 1)}
    row["denoise_in_steps"] = round(dn_gflop / max(gflop / steps, 1e-9), 1)
    if timed:
        row |= {"s_per_step": round(secs / steps, 3), "s_preview": round(pv_secs, 2), "s_denoise": round(dn_secs, 1)}
        row |= {"s_end_of_training": round(end_secs, 2), "s_image_check": round(ck_secs, 2)}
        row["steps_in_60s"] = int(60 / (secs / steps))
    return row


def main() -> None:
    """Print one JSON row per algorithm."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--algorithm", nargs="+", default=["n2v", "blindspot"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig override (ints)")
    p.add_argument("--steps", type=int, default=3, help="training steps counted (after one warm-up step)")
    p.add_argument("--time", action="store_true", help="also report seconds (meaningful on a quiet machine only)")
    args = p.parse_args()
    extra = {k: int(v) for k, v in (item.split("=", 1) for item in args.set)}
    for algorithm in args.algorithm:
        print(json.dumps(measure(algorithm, extra, args.steps, args.time)), flush=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
