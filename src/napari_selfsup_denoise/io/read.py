"""Open any supported image by its path."""

from __future__ import annotations

import os
from pathlib import Path

from ..axes import validate_axes
from .image import Image, InputError
from .paths import is_tiff, split_zarr_path
from .tiff import read_tiff
from .zarr import read_zarr


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
        img = read_tiff(p)
    elif split_zarr_path(p) is not None:
        img = read_zarr(p)
    else:
        raise InputError(f"{p}: unknown format; give a .tif/.tiff file or a Zarr/OME-Zarr store (.zarr)")
    if axes is not None:
        img.axes = validate_axes(axes, len(img.shape))
    return img
