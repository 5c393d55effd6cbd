"""Read and write TIFF, Zarr (v2/v3) and OME-Zarr images lazily, keeping axes and pixel sizes.

Reading never loads a whole image: TIFF files are memory-mapped when their
pixels are stored contiguously and read page by page (through tifffile's Zarr
view) otherwise; Zarr and OME-Zarr arrays are opened, not read. Writing TIFF
streams page by page into a temporary name that is renamed when complete, so
a half-written file never carries the final name. OME-Zarr (NGFF) helpers live
in :mod:`._ngff`.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .axes import AxesError, guess_axes, validate_axes

TIFF_SUFFIXES = (".tif", ".tiff")
_TIFF_TO_OURS = {"X": "X", "Y": "Y", "Z": "Z", "T": "T", "C": "C"}
_UNIT_ALIASES = {"um": "micrometer", "µm": "micrometer", "\\u00B5m": "micrometer", "micron": "micrometer"}
_UNIT_ALIASES |= {"nm": "nanometer", "mm": "millimeter", "m": "meter", "s": "second", "ms": "millisecond"}
_TIFF_UNIT = {"micrometer": "µm", "nanometer": "nm", "millimeter": "mm", "meter": "m"}


class InputError(ValueError):
    """An input path cannot be read as an image (missing, corrupt, unknown format)."""


@dataclass
class Image:
    """An opened image: lazy data plus what is needed to write a like-for-like output.

    Attributes
    ----------
    data : array-like
        numpy memmap/array or zarr array with ``shape``, ``dtype`` and slicing.
    axes : str
        Axes of ``data`` (letters of ``STCZYX``); empty when the file does not say.
    scale : dict
        Pixel size per axis letter (spatial sizes, frame interval), where known.
    unit : str or None
        Spatial unit, NGFF spelling (``micrometer``, ...).
    kind : str
        ``tiff``, ``zarr`` or ``ome-zarr``.
    path : str
        What was opened.
    meta : dict
        Format details for writing: ``imagej`` (bool), ``zarr_format``,
        ``ngff`` (the input's multiscale dict), ``levels``.
    """

    data: Any
    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    kind: str = "tiff"
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return tuple(int(n) for n in self.data.shape)

    def axes_or_guess(self) -> str:
        """The recorded axes, or a guess from the shape."""
        return self.axes or guess_axes(self.shape)

    def close(self) -> None:
        """Release open file handles."""
        for c in self._closers:
            with contextlib.suppress(Exception):
                c.close()
        self._closers.clear()


def norm_unit(unit: Any) -> str | None:
    """NGFF spelling of a unit string (``um`` -> ``micrometer``)."""
    if not unit:
        return None
    u = str(unit).strip()
    return _UNIT_ALIASES.get(u, _UNIT_ALIASES.get(u.lower(), u))


def is_tiff(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a TIFF file by its suffix."""
    return str(path).lower().endswith(TIFF_SUFFIXES)


def split_zarr_path(path: str | os.PathLike[str]) -> tuple[Path, str] | None:
    """Split ``store.zarr/inner/array`` into ``(store, "inner/array")``; None if not a Zarr path."""
    p = Path(path)
    parts = p.parts
    for i, part in enumerate(parts):
        if part.lower().endswith(".zarr"):
            return Path(*parts[: i + 1]), "/".join(parts[i + 1 :])
    for anc in (p, *p.parents):
        if anc in (Path("."), Path(anc.anchor)):
            break
        if any((anc / n).exists() for n in ("zarr.json", ".zarray", ".zgroup")):
            return anc, "" if anc == p else p.relative_to(anc).as_posix()
    return None


def read_image(path: str | os.PathLike[str], axes: str | None = None) -> Image:
    """Open a TIFF, Zarr array or OME-Zarr image lazily.

    Parameters
    ----------
    path : str or path-like
        ``file.tif``, ``store.zarr``, ``store.zarr/array`` or an OME-Zarr group.
    axes : str, optional
        Override the axes found in the file. Without it, ``Image.axes`` is
        empty when the file records none (see :meth:`Image.axes_or_guess`).

    Raises
    ------
    InputError
        If the path is missing, corrupt or not a supported format.
    AxesError
        If ``axes`` does not fit the data.
    """
    p = Path(path)
    if not p.exists() and split_zarr_path(p) is None:
        raise InputError(f"{p} does not exist")
    if is_tiff(p):
        img = _read_tiff(p)
    elif split_zarr_path(p) is not None:
        img = _read_zarr(p)
    else:
        raise InputError(f"{p}: unknown format; give a .tif/.tiff file or a Zarr/OME-Zarr store (.zarr)")
    if axes is not None:
        img.axes = validate_axes(axes, len(img.shape))
    return img


def _map_tiff_axes(taxes: str) -> str:
    """tifffile axes letters to ours: RGB samples become C, one other letter becomes S."""
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


def _read_tiff(p: Path) -> Image:
    import tifffile

    try:
        tf = tifffile.TiffFile(p)
        series = tf.series[0]
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(f"{p} is not a readable TIFF file ({exc})") from exc
    img = Image(None, _map_tiff_axes(series.axes), kind="tiff", path=str(p), meta={"imagej": bool(tf.is_imagej)})
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


def _read_zarr(p: Path) -> Image:
    import zarr

    from ._ngff import read_multiscale

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


def _pages(data: Any, axes: str) -> Iterator[np.ndarray]:
    """Yield TIFF pages (``YX`` or ``YXC``) of ``data`` in file order, one at a time."""
    lead = axes.index("Y")
    for idx in np.ndindex(*data.shape[:lead]):
        yield np.asarray(data[idx])


def tiff_axes_ok(axes: str) -> bool:
    """Whether ``axes`` can be written as TIFF pages (``...YX`` or ``...YXC``)."""
    return axes.endswith("YX") or axes.endswith("YXC")


def write_tiff(path: str | os.PathLike[str], data: Any, axes: str, scale: dict[str, float], unit: str | None) -> Path:
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
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tifffile.imwrite(tmp, _pages(data, axes), **kw)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return path
