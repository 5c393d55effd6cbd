"""The Zarr rows of bench_pipeline.py: ``denoise_files`` of a uint16 Zarr stack to a Zarr output.

One stack (``frames`` x ``size``^2, chunks 1 x 512 x 512, axes TYX) serves every row, and what zarr alone
takes to read it and write a float32 output of the same layout (chunks, codecs) is measured once, in the same
process, with one zarr call per frame (zarr then runs the frame's codecs concurrently, as the pipeline can);
``zarr_chunkwise_MP_per_s`` / ``ratio_chunkwise``: the reference before session 8, one call per chunk (serial
codecs, one core: lenient to the pipeline on a multi-core machine), kept to compare with older figures;
``zarr_dense_MP_per_s`` / ``ratio_dense``: a frame per call into an output that stores every chunk without
comparing it with the fill value (``write_empty_chunks``), as the batch path's outputs do since session 10
(the stricter reference: zarr's default compares each chunk, ~0.6 ms per 512^2 float32 chunk):

- ``ceiling-zarr``: an identity network that keeps N2V's margin and pooling grid (everything but the network);
- ``n2v-zarr``: the issue's row, an untrained N2V U-Net (depth 2, 32 channels) at the batch path's own settings
  (automatic tile and precision: bf16 on a GPU), next to the bare network on the windows that path uses
  (``bare_MP_per_s``; ``net_ratio`` = end-to-end / bare).

``ratio`` is zarr-alone seconds / pipeline seconds; ``peak_rss_gb`` is this process's peak so far.
Each row also reports one more run's CPU seconds per thread role (``threads``: see pipeline_busy.py) and the
self-check's seconds on the stack alone (``self_check_s``: since session 11 it runs beside the first units).
``put_calls`` (a list) adds a row per count of zarr write calls in flight (``SELFSUP_DENOISE_PUT_CALLS``).
"""

from __future__ import annotations

import inspect
import resource
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ZARR_ROWS = ("ceiling-zarr", "n2v-zarr")


def _zarr_alone(src: Path, dst: Path, per_chunk: bool = False, dense: bool = False) -> None:
    """Zarr alone reads every input chunk and writes a float32 output of the same layout, a frame per call.

    One call per frame lets zarr decode and encode the frame's chunks concurrently (as the pipeline's
    threads do) with bounded memory; ``per_chunk`` makes one call per chunk (the reference before
    session 8: zarr's codecs then run one at a time, on one core, and each call pays zarr's fixed cost).
    ``dense``: the output stores every chunk without comparing it with the fill value.
    """
    import zarr

    a = zarr.open_array(str(src), mode="r")
    config = {"config": {"write_empty_chunks": True}} if dense else {}
    out = zarr.create_array(str(dst), shape=a.shape, chunks=a.chunks, dtype="float32", fill_value=0, **config)
    step = a.chunks if per_chunk else (1, *a.shape[1:])
    for i in range(a.shape[0]):
        for y in range(0, a.shape[1], step[1]):
            for x in range(0, a.shape[2], step[2]):
                sl = (slice(i, i + 1), slice(y, y + step[1]), slice(x, x + step[2]))
                out[sl] = a[sl].astype(np.float32)


def _bare_batches(model: Any, frames: int, size: int, reps: int, device: str, best: Callable) -> tuple[float, int]:
    """MP/s of the network alone on the batch path's windows (its tile, as many per pass as it takes), and the tile."""
    from napari_selfsup_denoise import PredictConfig
    from napari_selfsup_denoise.batch.plan import default_edge
    from napari_selfsup_denoise.engine.device import autocast, pick_device, resolve_precision
    from napari_selfsup_denoise.engine.predict import tiles_per_forward

    dev = pick_device(device)
    tile = default_edge(model, device)
    win = tile + 2 * model.margin
    per = tiles_per_forward(model, dev, False, (win, win))
    n = frames * (-(-size // tile)) ** 2
    core = {"margin": model.margin} if "margin" in inspect.signature(model.method.infer).parameters else {}
    net, dtype = model.net.to(dev), resolve_precision("auto", dev)
    x = torch.randn(per, 1, win, win, device=dev).contiguous(memory_format=torch.channels_last)

    def run() -> None:
        with torch.inference_mode(), autocast(dev, dtype):
            for _ in range(-(-n // per)):
                model.method.infer(net, x, PredictConfig(), **core)
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return frames * size * size / best(run, reps) / 1e6, tile


def _self_check_s(model: Any, src: Path, best: Callable) -> float | None:
    """Seconds of the per-file self-check on the stack (where the code has one)."""
    import zarr

    try:
        from napari_selfsup_denoise.engine.checks import decide
    except ImportError:
        return None
    arr = zarr.open_array(str(src), mode="r")
    return round(best(lambda: decide(model, arr, "TYX"), 1), 3)


def _put_calls(n: int | None) -> Any:
    """Set the engine's zarr write calls in flight (where the code has the knob); returns the old value."""
    try:
        from napari_selfsup_denoise.engine import sink
    except ImportError:
        return None
    old = sink.PUT_CALLS
    if n is not None:
        sink.PUT_CALLS = n
    return old


def zarr_rows(
    rows: list[str], frames: int, size: int, reps: int, device: str, model_for: Callable, best: Callable,
    put_calls: list[int] | None = None,
):  # fmt: skip
    """Yield each asked Zarr row (see the module docstring); ``model_for(algorithm, identity, **cfg)`` makes models."""
    import zarr

    from napari_selfsup_denoise.batch import BatchOptions, denoise_files
    from pipeline_busy import busy  # next to this script

    tmp = Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    try:
        src = tmp / "in.zarr"
        arr = zarr.create_array(str(src), shape=(frames, size, size), chunks=(1, 512, 512), dtype="uint16")
        rng = np.random.default_rng(0)
        for i in range(frames):
            arr[i] = rng.poisson(100, (size, size)).astype(np.uint16)
        arr.attrs["axes"] = list("TYX")

        def alone(per_chunk: bool = False, dense: bool = False) -> None:
            shutil.rmtree(tmp / "alone.zarr", ignore_errors=True)
            _zarr_alone(src, tmp / "alone.zarr", per_chunk, dense)

        s_alone, mp = best(alone, reps), frames * size * size / 1e6
        s_chunkwise = best(lambda: alone(True), reps)
        s_dense = best(lambda: alone(dense=True), reps)
        runs = [(name, None) for name in ZARR_ROWS if name in rows]
        runs += [("ceiling-zarr", n) for n in put_calls or []]
        for name, calls in runs:
            ceiling = name == "ceiling-zarr"
            model = model_for("n2v", ceiling, **({} if ceiling else {"depth": 2, "base_channels": 32}))

            def pipeline(model: Any = model, ceiling: bool = ceiling) -> None:
                shutil.rmtree(tmp / "out.zarr", ignore_errors=True)
                fields = BatchOptions.__dataclass_fields__
                extra = {"accept_suspect": True} if "accept_suspect" in fields else {}  # untrained nets are "suspect"
                opts = BatchOptions(axes="TYX", tile=512 if ceiling else None, device=device, **extra)
                res = denoise_files(model, [str(src)], str(tmp / "out.zarr"), opts)
                assert res[0].status == "done", res[0].reason

            old = _put_calls(calls)
            try:
                s_pipe = best(pipeline, reps)
                threads = busy(pipeline)
            finally:
                _put_calls(old)
            row: dict[str, Any] = {"row": name, "shape": [frames, size, size], "device": device}
            if calls is not None:
                row["put_calls"] = calls
            row.update({"MP_per_s": round(mp / s_pipe, 3), "zarr_alone_MP_per_s": round(mp / s_alone, 3)})
            row["ratio"] = round(s_alone / s_pipe, 3)
            row.update(
                {
                    "zarr_chunkwise_MP_per_s": round(mp / s_chunkwise, 3),
                    "ratio_chunkwise": round(s_chunkwise / s_pipe, 3),
                    "zarr_dense_MP_per_s": round(mp / s_dense, 3),
                    "ratio_dense": round(s_dense / s_pipe, 3),
                }
            )
            if not ceiling:
                bare, tile = _bare_batches(model, frames, size, reps, device, best)
                row.update({"tile": tile, "bare_MP_per_s": round(bare, 3), "net_ratio": round(mp / s_pipe / bare, 3)})
            row.update({"self_check_s": _self_check_s(model, src, best), "threads": threads})
            row["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2)
            if torch.cuda.is_available() and device.startswith("cuda"):
                row["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
            yield row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
