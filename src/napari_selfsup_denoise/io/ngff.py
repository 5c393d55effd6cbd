"""OME-Zarr (NGFF 0.4 on Zarr v2, 0.5 on Zarr v3): read the full-resolution level, write a pyramid.

Only what the CLI needs: the first multiscale image of a group, its axes, the
scale/translation of level 0, and writing an image with the same axes and
coordinate transformations plus block-averaged lower levels.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from ..axes import AxesError, validate_axes

_TYPE_LETTER = {"time": "T", "channel": "C"}
_LETTER_TYPE = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}


def multiscale_attrs(group: Any) -> dict[str, Any] | None:
    """The first ``multiscales`` entry of a group (NGFF 0.4 or 0.5), or None."""
    attrs = dict(group.attrs)
    ms = attrs.get("ome", {}).get("multiscales") or attrs.get("multiscales")
    return dict(ms[0]) if ms else None


def _letter(ax: dict[str, Any] | str) -> str:
    if isinstance(ax, str):
        return ax[:1].upper()
    name = str(ax.get("name", "")).lower()
    if name in ("t", "c", "z", "y", "x"):
        return name.upper()
    return _TYPE_LETTER.get(str(ax.get("type", "")), "S")


def _transforms(entry: dict[str, Any], ndim: int) -> tuple[list[float], list[float]]:
    scale, trans = [1.0] * ndim, [0.0] * ndim
    for tr in entry.get("coordinateTransformations", []) or []:
        if tr.get("type") == "scale":
            scale = [float(v) for v in tr["scale"]]
        elif tr.get("type") == "translation":
            trans = [float(v) for v in tr["translation"]]
    return scale, trans


def read_multiscale(group: Any) -> dict[str, Any] | None:
    """Open level 0 of an OME-Zarr group: ``data``, ``axes``, ``scale``, ``unit`` and writing hints."""
    ms = multiscale_attrs(group)
    if ms is None:
        return None
    datasets = ms.get("datasets") or []
    if not datasets:
        return None
    data = group[datasets[0]["path"]]
    axes_meta = ms.get("axes") or ["t", "c", "z", "y", "x"][-data.ndim :]
    try:
        axes = validate_axes("".join(_letter(a) for a in axes_meta), data.ndim)
    except AxesError:
        axes = ""
    s0, _ = _transforms(datasets[0], data.ndim)
    sg, _ = _transforms(ms, data.ndim)
    scale = {a: s * g for a, s, g in zip(axes, s0, sg)}
    units = [a.get("unit") for a in axes_meta if isinstance(a, dict) and a.get("type") == "space"]
    return {
        "data": data,
        "axes": axes,
        "scale": scale,
        "unit": units[0] if units else None,
        "zarr_format": int(group.metadata.zarr_format),
        "ngff": ms,
        "levels": len(datasets),
    }


def level_factors(ngff: dict[str, Any] | None, axes: str, levels: int) -> list[list[int]]:
    """Per-level integer downsampling factors relative to the level above (YX by 2 by default)."""
    ndim = len(axes)
    default = [2 if a in "YX" else 1 for a in axes]
    if not ngff:
        return [default] * (levels - 1)
    out = []
    ds = ngff.get("datasets", [])
    for k in range(1, levels):
        if k < len(ds):
            a, _ = _transforms(ds[k - 1], ndim)
            b, _ = _transforms(ds[k], ndim)
            out.append([max(1, round(y / x)) if x else 1 for x, y in zip(a, b)])
        else:
            out.append(default)
    return out


def default_levels(shape: tuple[int, ...], axes: str, smallest: int = 256, most: int = 5) -> int:
    """Levels so that the coarsest YX plane is about ``smallest`` pixels on its short side."""
    short = min(shape[axes.index("Y")], shape[axes.index("X")])
    return max(1, min(most, 1 + int(math.log2(max(1, short // smallest))) if short > smallest else 1))


def downsample(src: Any, dst: Any, factors: list[int]) -> None:
    """Fill ``dst`` with block means of ``src`` (edges padded by replication), one chunk at a time."""
    chunks = dst.chunks
    grids = [range(0, n, c) for n, c in zip(dst.shape, chunks)]
    for start in itertools.product(*grids):
        dsl = tuple(slice(s, min(s + c, n)) for s, c, n in zip(start, chunks, dst.shape))
        ssl = tuple(slice(d.start * f, min(d.stop * f, n)) for d, f, n in zip(dsl, factors, src.shape))
        block = np.asarray(src[ssl], dtype=np.float32)
        want = [(d.stop - d.start) * f for d, f in zip(dsl, factors)]
        block = np.pad(block, [(0, w - b) for w, b in zip(want, block.shape)], mode="edge")
        shape = [v for d, f in zip(dsl, factors) for v in (d.stop - d.start, f)]
        mean = block.reshape(shape).mean(axis=tuple(range(1, 2 * len(factors), 2)))
        if np.dtype(dst.dtype).kind in "iu":
            info = np.iinfo(dst.dtype)
            mean = np.clip(np.rint(mean), info.min, info.max)
        dst[dsl] = mean.astype(dst.dtype)


def build_multiscale(
    axes: str, scale: dict[str, float], unit: str | None, factors: list[list[int]], src: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``multiscales`` entry: the input's axes and level-0 transforms when given, else built from ``axes``."""
    ndim = len(axes)
    if src is not None:
        axes_meta = src.get("axes")
        s0, t0 = _transforms(src["datasets"][0], ndim)
    else:
        axes_meta = None
        s0, t0 = [float(scale.get(a, 1.0)) for a in axes], [0.0] * ndim
    if not axes_meta:
        axes_meta = [{"name": a.lower(), **({"type": _LETTER_TYPE[a]} if a in _LETTER_TYPE else {})} for a in axes]
        for ax in axes_meta:
            if ax.get("type") == "space" and unit:
                ax["unit"] = unit
    datasets, cur = [], list(s0)
    for k in range(len(factors) + 1):
        if k:
            cur = [c * f for c, f in zip(cur, factors[k - 1])]
        trans = [t + (c - s) / 2 for t, c, s in zip(t0, cur, s0)]
        tr: list[dict[str, Any]] = [{"type": "scale", "scale": cur}]
        if any(trans):
            tr.append({"type": "translation", "translation": trans})
        datasets.append({"path": str(k), "coordinateTransformations": tr})
    out = {"axes": axes_meta, "datasets": datasets, "name": (src or {}).get("name", "denoised")}
    if src is not None and src.get("coordinateTransformations"):
        out["coordinateTransformations"] = src["coordinateTransformations"]
    return out


def write_multiscale_attrs(group: Any, multiscale: dict[str, Any]) -> None:
    """Store ``multiscale`` as NGFF 0.5 (Zarr v3) or 0.4 (Zarr v2) metadata."""
    if int(group.metadata.zarr_format) >= 3:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    else:
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]


def write_pyramid(group: Any, levels: list[list[int]]) -> None:
    """Create levels ``1..`` under ``group`` from level ``0`` with the given factors."""
    prev = group["0"]
    for k, f in enumerate(levels, start=1):
        shape = tuple(-(-n // q) for n, q in zip(prev.shape, f))
        chunks = tuple(min(c, n) for c, n in zip(prev.chunks, shape))
        dst = group.create_array(str(k), shape=shape, chunks=chunks, dtype=prev.dtype, overwrite=True)
        downsample(prev, dst, f)
        prev = dst
