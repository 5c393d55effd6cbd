"""Main-thread preparation of a training run: copy the data, check it, build the config and the job."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..axes import AxesError, spatial_ndim, validate_axes
from ..config import TrainConfig, resolve_defaults
from ..defaults import AUTO
from ._axes import layer_axes
from ._form import device_type
from ._layers import LayerError, Snapshot, allocate_output, check_size, snapshot
from ._preview import PreviewSource
from ._worker import TrainJob, notify

NET_FIELDS = ("algorithm", "depth", "base_channels", "batch_norm", "residual")


@dataclass
class Request:
    """What the person asked for in the widget (read on the main thread).

    Attributes
    ----------
    layer, target : napari layers or None
        The image to train on and, for Noise2Noise, the second acquisition.
    config : TrainConfig
        The form's config (axes may still be None).
    axis_labels : tuple of str
        The viewer's axis labels (used to guess the axes).
    init : Model or None
        The model to continue from.
    preview, uncertainty : bool
        Whether to preview live and add an uncertainty layer (blind-spot).
    """

    layer: Any
    target: Any
    config: TrainConfig
    axis_labels: tuple[str, ...] = ()
    init: Any = None
    preview: bool = True
    uncertainty: bool = False


def resolve_config(req: Request, shape: tuple[int, ...]) -> TrainConfig:
    """The config that will run: axes filled in, the network taken from the model when continuing, defaults resolved."""
    cfg = req.config
    axes = validate_axes(cfg.axes or layer_axes(req.layer, req.axis_labels), len(shape))
    cfg = cfg.replace(axes=axes)
    model = req.init
    if model is not None:
        nd = spatial_ndim(axes)
        if nd != model.ndim:
            raise AxesError(f"the current model is {model.ndim}D but the axes {axes!r} ask for {nd}D training")
        cfg = cfg.replace(**{k: getattr(model.config, k) for k in NET_FIELDS})
    return resolve_defaults(cfg, spatial_ndim(axes), device_type(cfg.device))


def target_data(req: Request, cfg: TrainConfig, snap: Snapshot) -> Any:
    """The Noise2Noise target's data (None for the other algorithms)."""
    if cfg.algorithm != "n2n":
        return None
    if req.target is None:
        raise LayerError("Noise2Noise needs a target: pick the second noisy acquisition as 'target'")
    target = snapshot(req.target).data
    if tuple(target.shape) != tuple(snap.data.shape):
        raise LayerError(f"the target's shape {tuple(target.shape)} differs from the image's {snap.data.shape}")
    return target


def prepare(req: Request) -> tuple[TrainJob, Snapshot, PreviewSource | None]:
    """Copy the data and build the job; raises ValueError with a plain message when it cannot run."""
    from ..prior import resolve_start  # torch: the docks open without it (_warm.py)

    if req.layer is None:
        raise LayerError("add or pick an image layer to train on")
    snap = snapshot(req.layer)
    cfg = resolve_config(req, tuple(snap.data.shape))
    axes = str(cfg.axes)
    check_size(snap, axes)
    auto = req.config.algorithm == AUTO and req.init is None  # the worker measures the noise first (routed)
    target = target_data(req, cfg, snap)
    preview = PreviewSource(snap, axes) if req.preview else None
    unc = req.uncertainty and cfg.algorithm == "blindspot"
    out = allocate_output(snap, axes, None)[0]
    unc_out = allocate_output(snap, axes, None, "uncertainty")[0] if unc else None
    start = None if req.init is not None else resolve_start(cfg, tuple(snap.data.shape))  # the built-in prior
    if start is not None and start.source.get("fallback"):
        notify(str(start.source["detail"]), warning=True)
    job = TrainJob(
        data=snap.data,
        config=cfg,
        target=target,
        init=req.init,
        start=start,
        preview=preview,
        uncertainty=unc,
        out=out,
        uncertainty_out=unc_out,
        route=req.config.replace(axes=axes) if auto else None,
        decide=routed if auto else None,
    )
    return job, snap, preview


def routed(job: TrainJob) -> TrainJob:
    """In the worker: ``job`` with ``auto`` decided by the noise measured on its data (it may pick structN2V).

    The measurement is numpy over up to 8 planes (0.13 s of CPU on the 3D sample): on the main
    thread it made the Train press one 0.13-0.18 s turn of napari's event loop (issue 10, item 13).
    """
    from ..engine.route import route_for
    from ..prior import resolve_start

    if job.route is None:
        return job
    route = route_for(job.route, job.data)
    if route.config.algorithm == AUTO:  # the per-2D/3D pick prepare() resolved
        return dataclasses.replace(job, choice=route.choice, routing=route)
    axes = str(job.config.axes)
    cfg = resolve_defaults(route.config, spatial_ndim(axes), device_type(job.config.device))
    unc = job.uncertainty and cfg.algorithm == "blindspot"
    start = resolve_start(cfg, tuple(job.data.shape))
    return dataclasses.replace(
        job, config=cfg, start=start, choice=route.choice, routing=route, uncertainty=unc,
        uncertainty_out=job.uncertainty_out if unc else None,
    )  # fmt: skip
