"""Main-thread helpers around napari layers: snapshots for the worker, result layers, outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

_CONTRAST_SAMPLE = 1_000_000
MARK_KEY = "selfsup_denoise"  # the result layer's metadata and a Zarr output's attrs keep the self-check here


class LayerError(ValueError):
    """The picked layer cannot be used (wrong type, removed, ...)."""


@dataclass
class Snapshot:
    """What the worker needs from a layer, taken on the main thread.

    Attributes
    ----------
    name : str
        The layer's name when the snapshot was taken.
    data : array-like
        A private numpy copy, or the layer's own lazy (dask / zarr) array,
        which is read block by block and never mutated.
    rgb : bool
        Whether the last axis holds colour channels.
    placement : dict
        Keyword arguments that put a new layer where the source is: scale,
        translate, rotate, shear, affine, units, axis labels, metadata.
    contrast_limits : tuple
        The source's contrast limits.
    """

    name: str
    data: Any
    rgb: bool
    placement: dict[str, Any] = field(default_factory=dict)
    contrast_limits: tuple[float, float] = (0.0, 1.0)

    @property
    def lazy(self) -> bool:
        """True for dask / zarr / other out-of-memory arrays."""
        return not isinstance(self.data, np.ndarray)


def image_data(layer: Any) -> Any:
    """The layer's full-resolution array (level 0 of a multiscale layer)."""
    from napari.layers import Image

    if not isinstance(layer, Image):
        kind = type(layer).__name__
        raise LayerError(f"'{layer.name}' is a {kind} layer; pick an image layer to denoise")
    return layer.data[0] if layer.multiscale else layer.data


def snapshot(layer: Any, copy: bool = True) -> Snapshot:
    """Copy what a worker needs from ``layer`` (numpy data is copied, lazy data is not)."""
    data = image_data(layer)
    if isinstance(data, np.ndarray) and copy:
        data = data.copy()
    if min(data.shape) < 1:
        raise LayerError(f"'{layer.name}' is empty (shape {tuple(data.shape)})")
    return Snapshot(layer.name, data, bool(layer.rgb), placement(layer), tuple(layer.contrast_limits))


def check_size(snap: Snapshot, axes: str, minimum: int = 16) -> None:
    """Refuse images too small to cut a training patch from, before any work starts."""
    sizes = dict(zip(axes, snap.data.shape))
    y, x = sizes.get("Y", 0), sizes.get("X", 0)
    if min(y, x) < minimum:
        raise LayerError(
            f"'{snap.name}' is {y} x {x} pixels in Y, X: too small to train on (at least {minimum} x {minimum})"
        )


def placement(layer: Any) -> dict[str, Any]:
    """Keyword arguments for ``viewer.add_image`` that reproduce the layer's placement and metadata."""
    kw: dict[str, Any] = {
        "scale": tuple(layer.scale),
        "translate": tuple(layer.translate),
        "rotate": np.asarray(layer.rotate),
        "shear": np.asarray(layer.shear),
        "affine": np.asarray(layer.affine.affine_matrix),
        "metadata": dict(layer.metadata),
    }
    for name in ("units", "axis_labels"):
        if hasattr(layer, name):
            kw[name] = tuple(getattr(layer, name))
    return kw


def robust_limits(data: Any, rgb: bool = False) -> tuple[float, float]:
    """Contrast limits from the 0.5 / 99.5 percentiles of a strided subsample (never loads lazy data whole)."""
    shape = tuple(data.shape)
    step = max(1, int(np.ceil((int(np.prod(shape)) / _CONTRAST_SAMPLE) ** (1 / len(shape)))))
    sample = np.asarray(data[tuple(slice(None, None, step) for _ in shape)], dtype=np.float32)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def add_result(viewer: Any, snap: Snapshot, data: Any, suffix: str, **kwargs: Any) -> Any:
    """Add ``data`` as ``"<name> <suffix>"`` placed exactly like the snapshot's source layer."""
    kw = {**snap.placement, **kwargs}
    if kw.get("contrast_limits") is None:  # callers pass limits computed in the worker where they can
        kw["contrast_limits"] = robust_limits(data)
    return viewer.add_image(data, name=f"{snap.name} {suffix}", rgb=snap.rgb, **kw)


def check_mark(decision: Any) -> dict[str, Any]:
    """What a result keeps of its self-checks, as the command line's outputs do: status, output, failures, figures."""
    from ..engine.checks import check_record

    return check_record(decision, "suspect", "posterior suspect; the prior mean was returned")


def marked(snap: Snapshot, decision: Any, suffix: str = "denoised") -> tuple[str, dict[str, Any]]:
    """The result layer's name (``" (suspect)"`` added when a check failed) and metadata (the source's + the mark)."""
    meta = dict(snap.placement.get("metadata", {}))
    if decision is None:
        return f"{snap.name} {suffix}", meta
    name = f"{snap.name} {suffix}" + (" (suspect)" if decision.suspect else "")
    return name, {**meta, MARK_KEY: {"self_check": check_mark(decision)}}


def mark_output(out: Any, decision: Any) -> None:
    """Record the self-checks in a Zarr output's attrs (under :data:`MARK_KEY`); numpy outputs keep none."""
    if decision is not None and hasattr(out, "attrs"):
        out.attrs[MARK_KEY] = {"self_check": check_mark(decision)}


def safe_name(name: str) -> str:
    """A file-name-safe version of a layer name."""
    import re

    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "image"


def _chunks(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    edge = {"Y": 512, "X": 512, "Z": 32}
    return tuple(s if a == "C" else min(s, edge.get(a, 1)) for a, s in zip(axes, shape))


def allocate_output(snap: Snapshot, axes: str, path: str | None, suffix: str = "denoised") -> tuple[Any, str | None]:
    """Where prediction writes: float32 numpy in memory, or a zarr array on disk.

    A lazy (dask / zarr) source, or an explicit ``path``, gets a zarr array
    written chunk by chunk, so the source is never loaded whole; without a
    path a temporary folder is used. Returns the array and the zarr path (or None).
    """
    shape = tuple(int(s) for s in snap.data.shape)
    if path is None and not snap.lazy:
        return np.zeros(shape, dtype=np.float32), None
    import tempfile
    from pathlib import Path

    import zarr

    if path is None:
        path = str(Path(tempfile.mkdtemp(prefix="selfsup-denoise-")) / f"{safe_name(snap.name)}-{suffix}.zarr")
    arr = zarr.create_array(store=path, shape=shape, chunks=_chunks(shape, axes), dtype="float32", overwrite=True)
    return arr, path
