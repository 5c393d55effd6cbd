"""Run work units as dask.distributed tasks that read from and write to shared stores.

Each task opens the model file, the input and the output Zarr arrays by path
(cached per worker thread), predicts one unit with the engine (which reads the
model's margin around the unit as halo) and writes its completion marker. The
scheduler is dask's; nothing here queues or retries work itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

from ..engine.events import drain

_LOCAL = threading.local()


@contextlib.contextmanager
def dask_client(scheduler: str | None, local_workers: int | None) -> Iterator[Any]:
    """A client of ``scheduler`` (e.g. ``tcp://host:8786``) or of a new local cluster of processes on loopback."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="20s") as client:
            yield client
        return
    n = int(local_workers or 1)
    threads = max(1, (os.cpu_count() or 1) // n)
    old = os.environ.get("SELFSUP_DENOISE_THREADS")
    os.environ["SELFSUP_DENOISE_THREADS"] = str(threads)  # inherited by the worker processes
    try:
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        )
    finally:
        if old is None:
            os.environ.pop("SELFSUP_DENOISE_THREADS", None)
        else:
            os.environ["SELFSUP_DENOISE_THREADS"] = old
    with cluster, Client(cluster) as client:
        yield client


def _context(spec_json: str) -> dict[str, Any]:
    """Model, input and outputs for ``spec_json``, opened once per worker thread."""
    cached = getattr(_LOCAL, "ctx", None)
    if cached is not None and cached["key"] == spec_json:
        return cached
    if cached is not None:
        cached["image"].close()
    import zarr

    from ..config import PredictConfig, from_dict
    from ..engine.model import load_model
    from ..engine.predict import cached
    from ..io import read_image
    from .store import CastArray, dense

    spec = json.loads(spec_json)
    image = read_image(spec["src"], spec["axes"])
    outs = [dense(zarr.open_array(w, mode="r+", path=inner or None)) for w, inner in spec["outs"]]
    ctx = {
        "key": spec_json,
        "spec": spec,
        "model": load_model(spec["model"]),
        "image": image,
        "data": cached(image.data),  # halos shared with the worker's previous units are read once
        "pcfg": from_dict(spec["pcfg"], PredictConfig),
        "outs": [CastArray(outs[0]), *outs[1:]],
    }
    _LOCAL.ctx = ctx
    return ctx


def unit_task(spec_json: str, key: str, region: tuple[slice, ...]) -> int:
    """Predict one unit into the shared output and mark it done; returns its pixel count."""
    from .local import predict_region
    from .plan import region_px
    from .store import mark_done

    ctx = _context(spec_json)
    spec, outs = ctx["spec"], ctx["outs"]
    unc = outs[1] if len(outs) > 1 else None
    drain(predict_region(ctx["model"], ctx["data"], spec["axes"], ctx["pcfg"], outs[0], unc, region))
    mark_done(spec["done"], key)
    return region_px(region, spec["axes"])


def run_units(client: Any, spec_json: str, pending: list, on_unit: Callable[[str, int], None]) -> None:
    """Submit every pending unit; report each as it completes; on the first failure cancel the rest and raise."""
    from distributed import as_completed

    futures = {client.submit(unit_task, spec_json, k, r, pure=False): k for k, r in pending}
    try:
        for fut in as_completed(list(futures)):
            on_unit(futures[fut], fut.result())
    finally:
        client.cancel([f for f in futures if not f.done()])
