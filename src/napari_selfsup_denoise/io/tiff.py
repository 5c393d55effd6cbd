"""TIFF in and out: memory-mapped or page-by-page reading, streamed atomic writing, pixel sizes kept."""

from __future__ import annotations

import contextlib
import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..axes import AxesError, validate_axes
from .image import Image, InputError, norm_unit
from .tiff_check import check_complete

_TIFF_TO_OURS = {"X": "X", "Y": "Y", "Z": "Z", "T": "T", "C": "C"}
_TIFF_UNIT = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m"}


def _map_tiff_axes(taxes: str, kind: str = "ome") -> str:
    """tifffile axes letters to ours: RGB samples become C, one other named letter becomes S.

    Empty (unknown, so guessed like any image without metadata) when an axis is
    unnamed: tifffile's I (a sequence of pages) or, outside OME-TIFF, its Q. A
    plain multi-page TIFF is a Z stack as often as a time-lapse. In OME-TIFF, Q
    is a declared extra dimension (how S is written), so it stays S.
    """
    if "I" in taxes or ("Q" in taxes and kind.lower() != "ome"):
        return ""
    out = []
    for a in taxes:
        if a in _TIFF_TO_OURS and _TIFF_TO_OURS[a] not in out:
            out.append(_TIFF_TO_OURS[a])
        elif a == "S" and "C" not in taxes and "C" not in out:
            out.append("C")
        elif "S" not in out:
            out.append("S")
        else:
            return ""
    try:
        return validate_axes("".join(out))
    except AxesError:
        return ""


def read_tiff(p: Path) -> Image:
    """Open a TIFF file lazily (memory-mapped when contiguous, else page by page)."""
    import tifffile

    try:
        tf = tifffile.TiffFile(p)
        series = tf.series[0]
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(f"{p} is not a readable TIFF file, or is truncated or damaged ({exc})") from exc
    try:
        check_complete(tf, series, p)
    except InputError:
        tf.close()
        raise
    img = Image(
        None,
        _map_tiff_axes(series.axes, str(getattr(series, "kind", ""))),
        kind="tiff",
        path=str(p),
        meta={"imagej": bool(tf.is_imagej)},
    )
    try:
        img.data = tifffile.memmap(p, mode="r")
        if tuple(img.data.shape) != tuple(series.shape):
            raise ValueError("series shape differs")
    except Exception:  # compressed, tiled or multi-series: read page by page
        import zarr

        store = series.aszarr()
        img.data = zarr.open(store, mode="r")
        img._closers.append(store)
    img._closers.append(tf)
    img.scale, img.unit = _tiff_pixel_sizes(tf)
    return img


def _tiff_pixel_sizes(tf: Any) -> tuple[dict[str, float], str | None]:
    """Pixel sizes from OME-XML, or from ImageJ metadata and the resolution tags."""
    if tf.is_ome and tf.ome_metadata:
        with contextlib.suppress(ET.ParseError, StopIteration):
            pixels = next(el for el in ET.fromstring(tf.ome_metadata).iter() if el.tag.endswith("Pixels"))
            scale = {a: float(pixels.attrib[f"PhysicalSize{a}"]) for a in "XYZ" if f"PhysicalSize{a}" in pixels.attrib}
            if "TimeIncrement" in pixels.attrib:
                scale["T"] = float(pixels.attrib["TimeIncrement"])
            return scale, norm_unit(pixels.attrib.get("PhysicalSizeXUnit", "µm"))
    scale: dict[str, float] = {}
    ij = tf.imagej_metadata or {}
    with contextlib.suppress(Exception):
        xres, yres = tf.pages[0].get_resolution()
        if ij or (xres, yres) != (1, 1):
            scale["X"], scale["Y"] = 1.0 / float(xres), 1.0 / float(yres)
    if "spacing" in ij:
        scale["Z"] = float(ij["spacing"])
    if "finterval" in ij:
        scale["T"] = float(ij["finterval"])
    return scale, norm_unit(ij.get("unit"))


def _pages(data: Any, axes: str) -> Iterator[np.ndarray]:
    """Yield TIFF pages (``YX`` or ``YXC``) of ``data`` in file order, one at a time."""
    lead = axes.index("Y")
    for idx in np.ndindex(*data.shape[:lead]):
        yield np.asarray(data[idx])


def tiff_axes_ok(axes: str) -> bool:
    """Whether ``axes`` can be written as TIFF pages (``...YX`` or ``...YXC``)."""
    return axes.endswith("YX") or axes.endswith("YXC")


_RECORD_TAG = 65432  # private ASCII tag: JSON record of the run that wrote the file (checked by --resume)


def read_tiff_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The run record :func:`write_tiff` stored in a TIFF file; empty when there is none."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            tag = tf.pages[0].tags.get(_RECORD_TAG)
            if tag is None:
                return {}
            raw = tag.value  # tifffile returns private ASCII tags as str, bytes or an int8 array
            text = raw if isinstance(raw, str) else bytes(np.asarray(raw).astype(np.uint8)).rstrip(b"\0").decode()
            return dict(json.loads(text))
    except Exception:  # not ours, corrupt or unreadable: no record
        return {}


def write_tiff(
    path: str | os.PathLike[str],
    data: Any,
    axes: str,
    scale: dict[str, float],
    unit: str | None,
    record: dict[str, Any] | None = None,
) -> Path:
    """Write ``data`` as a TIFF, page by page, to a temporary name renamed when complete.

    ImageJ hyperstacks are written when the axes allow it (a subsequence of
    ``TZCYX`` under 4 GB), OME-TIFF otherwise; pixel sizes and units are kept.

    Parameters
    ----------
    path : path-like
        Final file name.
    data : array-like
        Image in ``axes`` order (numpy or zarr; read one page at a time).
    axes : str
        Axes of ``data``; must end in ``YX`` or ``YXC``.
    scale, unit : pixel sizes per axis letter and their unit.
    record : dict, optional
        JSON-able record of the run, kept in a private tag (see :func:`read_tiff_record`).
    """
    import tifffile

    path = Path(path)
    if not tiff_axes_ok(axes):
        raise AxesError(f"cannot write axes {axes!r} as TIFF pages; Y and X must come last (use --format zarr)")
    nbytes = int(np.prod(data.shape)) * np.dtype(data.dtype).itemsize
    order = "".join(a for a in "TZCYX" if a in axes)
    kw: dict[str, Any] = {"shape": tuple(data.shape), "dtype": np.dtype(data.dtype), "bigtiff": nbytes > 2**32 - 2**25}
    tunit = _TIFF_UNIT.get(unit or "", unit or "µm")
    if "X" in scale and "Y" in scale:
        kw["resolution"] = (1.0 / scale["X"], 1.0 / scale["Y"])
    if order == axes and not kw["bigtiff"]:
        meta: dict[str, Any] = {"axes": axes, "unit": "micron" if tunit == "µm" else tunit}
        meta |= {k: scale[a] for k, a in (("spacing", "Z"), ("finterval", "T")) if a in scale}
        kw |= {"imagej": True, "metadata": meta}
    else:
        meta = {"axes": axes.replace("S", "Q")}
        meta |= {f"PhysicalSize{a}": scale[a] for a in "XYZ" if a in scale}
        meta |= {f"PhysicalSize{a}Unit": tunit for a in "XYZ" if a in scale}
        kw |= {"ome": True, "metadata": meta}
    if record is not None:
        kw["extratags"] = [(_RECORD_TAG, 2, 0, json.dumps(record, sort_keys=True), True)]
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tifffile.imwrite(tmp, _pages(data, axes), **kw)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
