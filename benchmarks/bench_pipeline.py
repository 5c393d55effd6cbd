"""Prediction pipeline throughput: the identity-network ceiling, the real networks, in memory and Zarr -> Zarr.

Rows (each printed as one JSON line):

- ``ceiling-memory``: ``Model.denoise`` of a float32 image with an identity
  network that keeps N2V's margin and pooling grid: everything but the network.
- ``ceiling-zarr``: ``denoise_files`` of a uint16 Zarr stack (chunks 1 x 512 x 512)
  to a float32 Zarr with the identity network, next to what zarr alone takes to
  read the input and write an output of the same shape, chunks and dtype (a frame
  per zarr call; ``ratio_chunkwise``: a chunk per call, the reference before session 8).
  ``ratio`` is zarr-alone seconds / pipeline seconds; ``peak_rss_gb`` is this process's.
- ``n2v-zarr``: the same with the real N2V network (depth 2, 32 channels) at the batch path's
  own tile and precision, next to zarr alone and to the bare network on that path's windows
  (benchmarks/pipeline_zarr.py; run the Zarr rows first, or alone, to read the RSS as theirs).
- ``n2v`` and ``blindspot``: ``Model.denoise`` of a 2048^2 image (untrained
  networks: speed only) at ``--precision``, next to the bare forward pass (the
  method's call of the network, as the pipeline makes it) on the same windows in
  the same process (``ratio`` = end-to-end MP/s / bare MP/s); ``peak_rss_gb`` is the
  process's peak so far (run the row alone to read it as the row's).
- ``train-data``: training batches per second (blind-spot 4 x 96^2, N2V 16 x 64^2)
  cut on the host and from the image held on the training device (the same draws).
- ``flops``: the blind-spot row's network work, counted (no clock): floating-point operations
  per output pixel over the windows the tiler uses (automatic tile, or ``--tile``), for the
  whole-window forward pass and for the call the pipeline makes (on each direction's context).
  Load-independent, so it predicts a change of the timed row.

Only public API is used, so the script also runs against older code: put that
code first on ``PYTHONPATH`` (see docs/benchmarks.md). ``--save``/``--compare``
store and check the blind-spot output (within 1e-4) across two such runs.

Usage::

    python benchmarks/bench_pipeline.py [--quick] [--device cpu|cuda] [--precision fp32|bf16]
                                        [--rows ceiling-memory,...] [--save out.npy | --compare out.npy]
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import resource
import time
from typing import Any

import numpy as np
import torch
from torch import nn

ROWS = ("ceiling-memory", "ceiling-zarr", "n2v-zarr", "n2v", "blindspot", "train-data", "flops")


def _best(fn: Any, reps: int) -> float:
    """Fastest of ``reps`` timed calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class Identity(nn.Module):
    """Returns its input; carries the margin and pooling grid of a real network."""

    def __init__(self, margin: int, multiple: int) -> None:
        super().__init__()
        self.margin, self.multiple = margin, multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` itself."""
        return x


def _model(algorithm: str, identity: bool = False, **cfg: Any) -> Any:
    from napari_selfsup_denoise import TrainConfig
    from napari_selfsup_denoise.engine.data import Normalisation
    from napari_selfsup_denoise.engine.methods import get_method
    from napari_selfsup_denoise.engine.model import Model

    config = TrainConfig(algorithm=algorithm, axes="YX", **cfg)
    try:  # per-algorithm defaults are resolved explicitly since issue 9 (older code has no such step)
        from napari_selfsup_denoise.config import resolve_defaults

        config = resolve_defaults(config, 2)
    except ImportError:
        pass
    torch.manual_seed(0)
    net = get_method(config).build(2, 1).eval().to(memory_format=torch.channels_last)
    if identity:
        net = Identity(int(net.margin), int(net.multiple))
    return Model(net, config, "YX", 2, 1, Normalisation("meanstd", (100.0,), (20.0,)))


def ceiling_memory(size: int, reps: int, device: str) -> dict:
    """Identity network, float32 image in memory."""
    model = _model("n2v", identity=True)
    img = np.random.default_rng(0).normal(100, 20, (size, size)).astype(np.float32)
    s = _best(lambda: model.denoise(img, "YX", device=device, precision="fp32", **_no_check(model)), reps)
    return {"row": "ceiling-memory", "size": size, "MP_per_s": round(size * size / s / 1e6, 1), "seconds": round(s, 4)}


def _no_check(model: Any) -> dict[str, bool]:
    """``check=False`` where ``Model.denoise`` runs the self-check (not the pipeline's cost); old code has none."""
    return {"check": False} if "check" in inspect.signature(model.denoise).parameters else {}


def _bare(model: Any, size: int, reps: int, device: str, precision: str, tile: int | None = None) -> float:
    """MP/s of the method's forward pass alone on the windows the tiler uses for a ``size``^2 image (``tile``, or auto).

    The network (blind-spot: on each direction's context, and the posterior) as the pipeline calls it, where the
    code has that call (older code: the whole windows).
    """
    from napari_selfsup_denoise import PredictConfig
    from napari_selfsup_denoise.engine.device import autocast, pick_device, resolve_precision
    from napari_selfsup_denoise.engine.predict import auto_tile

    dev = pick_device(device)
    dtype = resolve_precision(precision, dev)
    core = {"margin": model.margin} if "margin" in inspect.signature(model.method.infer).parameters else {}
    tile = min(tile or auto_tile(model, dev, False), -(-size // model.multiple) * model.multiple)
    n = -(-size // tile)
    win = tile + 2 * model.margin
    net = model.net.to(dev)
    x = torch.randn(1, 1, win, win, device=dev).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode(), autocast(dev, dtype):
            for _ in range(n * n):
                model.method.infer(net, x, PredictConfig(), **core)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return size * size / _best(run, reps) / 1e6


def network(
    algorithm: str,
    size: int,
    reps: int,
    device: str,
    save: str | None,
    compare: str | None,
    precision: str = "fp32",
    tile: int | None = None,
) -> dict:
    """A real (untrained) network end to end, against the bare network in the same process (``tile``: or auto)."""
    cfg = {"depth": 2, "base_channels": 32} if algorithm == "n2v" else {"depth": 3, "base_channels": 32}
    model = _model(algorithm, **cfg)
    img = np.random.default_rng(1).normal(100, 20, (size, size)).astype(np.float32)
    box: dict[str, np.ndarray] = {}

    def run() -> None:
        box["out"] = model.denoise(img, "YX", tile=tile, device=device, precision=precision, **_no_check(model))

    s = _best(run, reps)
    row = {"row": algorithm, "size": size, "device": device, "precision": precision, "tile": tile or "auto"}
    row["MP_per_s"] = round(size * size / s / 1e6, 3)
    bare = _bare(model, size, reps, device, precision, tile)
    row.update({"bare_MP_per_s": round(bare, 3), "ratio": round(size * size / s / 1e6 / bare, 3)})
    row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)  # this process so far
    if torch.cuda.is_available() and device.startswith("cuda"):
        row["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    if save and algorithm == "blindspot":
        np.save(save, box["out"])
    if compare and algorithm == "blindspot":
        row["max_abs_diff_vs_saved"] = float(np.abs(box["out"] - np.load(compare)).max())
    return row


def train_data(size: int, reps: int, device: str) -> dict:
    """Training batches per second cut on the host (numpy) and from data held on the device, same draws."""
    from napari_selfsup_denoise.engine.arrays import canonical
    from napari_selfsup_denoise.engine.data import Normalisation, PatchSampler
    from napari_selfsup_denoise.engine.device import pick_device

    dev = pick_device(device)
    canon = canonical(np.random.default_rng(2).normal(100, 20, (size, size)).astype(np.float32), "YX")
    norm = Normalisation("meanstd", (100.0,), (20.0,))
    row: dict[str, Any] = {"row": "train-data", "size": size, "device": str(dev)}
    for name, batch, edge in (("blindspot", 4, 96), ("n2v", 16, 64)):
        rates = {}
        for where in ("host", "device"):
            extra = {"device": dev} if where == "device" else {}
            try:
                sampler = PatchSampler(canon, norm, (1, edge, edge), np.random.default_rng(0), 0.1, True, **extra)
            except TypeError:  # older code: no device path
                continue

            def draw(sampler: Any = sampler, where: str = where, batch: int = batch) -> None:
                for _ in range(50):
                    x, _ = sampler.batch(batch)
                    if where == "host":  # what the training loop then does per step
                        x = x[:, :, 0].contiguous(memory_format=torch.channels_last).to(dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize()

            rates[where] = round(50 / _best(draw, reps), 1)
        row[f"{name}_batches_per_s"] = rates
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: checks that every row runs")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "auto"], help="of the n2v/blindspot rows")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {ROWS}")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--save", help="save the blind-spot output here (.npy)")
    p.add_argument("--compare", help="report the largest difference of the blind-spot output to this .npy")
    p.add_argument("--tile", type=int, help="the tile of the flops row (default: the automatic tile)")
    p.add_argument("--put-calls", help="also time ceiling-zarr at these counts of zarr write calls in flight (1,4,8)")
    p.add_argument("--tiles", default="", help="comma-separated tiles of the n2v/blindspot rows, a row each (0: auto)")
    a = p.parse_args()
    size, frames, reps = (512, 4, 1) if a.quick else (2048, 32, 3)
    reps = a.reps or reps
    rows = a.rows.split(",")
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "device": a.device}))
    if "ceiling-memory" in rows:
        print(json.dumps(ceiling_memory(size, reps, a.device)), flush=True)
    if any(r.endswith("-zarr") for r in rows):
        from pipeline_zarr import zarr_rows  # next to this script

        calls = [int(n) for n in a.put_calls.split(",")] if a.put_calls else None
        for row in zarr_rows(rows, frames, size, reps, a.device, _model, _best, calls):
            print(json.dumps(row), flush=True)
    if "train-data" in rows:
        print(json.dumps(train_data(size, reps, a.device)), flush=True)
    if "flops" in rows:
        from pipeline_flops import flops  # next to this script

        print(json.dumps(flops(_model("blindspot", depth=3, base_channels=32), size, a.tile)), flush=True)
    for alg, tile in itertools.product(
        ("n2v", "blindspot"), [int(t) or None for t in a.tiles.split(",") if t] or [None]
    ):
        if alg in rows:
            n = 256 if a.quick and alg == "blindspot" else size
            row = network(alg, n, 1 if alg == "blindspot" else reps, a.device, a.save, a.compare, a.precision, tile)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
