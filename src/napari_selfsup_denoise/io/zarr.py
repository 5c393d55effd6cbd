"""Zarr (v2 / v3) arrays and OME-Zarr groups, opened lazily with their axes and pixel sizes."""

from __future__ import annotations

import contextlib
from pathlib import Path

from ..axes import AxesError, validate_axes
from .image import Image, InputError
from .ngff import read_multiscale
from .paths import split_zarr_path


def read_zarr(p: Path) -> Image:
    """Open a Zarr array, a one-array group or an OME-Zarr multiscale group lazily."""
    import zarr

    store, inner = split_zarr_path(p) or (p, "")
    try:
        node = zarr.open(str(store), mode="r", path=inner or None)
    except Exception as exc:  # zarr raises several types for missing/corrupt stores
        raise InputError(f"{p} is not a readable Zarr store or array ({exc})") from exc
    zf = int(node.metadata.zarr_format)
    if isinstance(node, zarr.Group):
        ms = read_multiscale(node)
        if ms is not None:
            return Image(ms.pop("data"), ms.pop("axes"), ms.pop("scale"), ms.pop("unit"), "ome-zarr", str(p), ms)
        arrays = sorted(k for k, _ in node.arrays())
        if len(arrays) != 1:
            raise InputError(
                f"{p} is a Zarr group holding {len(arrays)} arrays ({', '.join(arrays) or 'none'}); "
                f"name one, e.g. {p}/{arrays[0] if arrays else 'ARRAY'}"
            )
        node = node[arrays[0]]
    names = node.attrs.get("axes") or node.attrs.get("_ARRAY_DIMENSIONS")
    names = names or getattr(node.metadata, "dimension_names", None)
    axes = ""
    if names and all(isinstance(n, str) and n for n in names):
        with contextlib.suppress(AxesError):
            axes = validate_axes("".join(str(n)[0] for n in names), node.ndim)
    scale = {str(k): float(v) for k, v in dict(node.attrs.get("pixel_sizes", {})).items()}
    unit = node.attrs.get("unit")
    return Image(node, axes, scale, unit, "zarr", str(p), {"zarr_format": zf})
