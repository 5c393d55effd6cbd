"""Read and write TIFF, Zarr (v2/v3) and OME-Zarr images lazily, keeping axes and pixel sizes.

Reading never loads a whole image: TIFF files are memory-mapped when their
pixels are stored contiguously and read page by page (through tifffile's Zarr
view) otherwise; Zarr and OME-Zarr arrays are opened, not read. Writing TIFF
streams page by page into a temporary name that is renamed when complete, so
a half-written file never carries the final name.

Modules: :mod:`.image` (the opened image), :mod:`.paths` (what a path names),
:mod:`.tiff`, :mod:`.zarr`, :mod:`.ngff` (OME-Zarr metadata and pyramids),
:mod:`.read` (open any of them), :mod:`.stack` (training input, several files).
"""

from .image import Image, InputError, norm_unit
from .paths import (
    TIFF_SUFFIXES,
    OutputError,
    check_output_path,
    expand_inputs,
    file_identity,
    format_of_path,
    input_clash,
    is_image_path,
    is_tiff,
    model_output_path,
    split_zarr_path,
)
from .read import read_image
from .stack import StackedArray, open_training_data
from .tiff import read_tiff_record, tiff_axes_ok, write_tiff

__all__ = [
    "TIFF_SUFFIXES",
    "Image",
    "InputError",
    "OutputError",
    "StackedArray",
    "check_output_path",
    "expand_inputs",
    "format_of_path",
    "input_clash",
    "is_image_path",
    "is_tiff",
    "model_output_path",
    "norm_unit",
    "open_training_data",
    "read_image",
    "read_tiff_record",
    "file_identity",
    "split_zarr_path",
    "tiff_axes_ok",
    "write_tiff",
]
