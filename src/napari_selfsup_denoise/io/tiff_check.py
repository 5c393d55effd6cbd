"""Whether a TIFF file is whole: its directories, their tag values and its pixel data lie inside the file."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

from .image import InputError

_MAX_TAGS = 4096  # more entries in one directory means a damaged file (tifffile's own bound)


def check_complete(tf: Any, series: Any, p: Path) -> None:
    """Raise :class:`InputError` when the TIFF file ``p`` is truncated or damaged.

    Refused: pixel data past the end of the file, fewer images than its ImageJ
    metadata says, and an image file directory (IFD) whose entries, tag values
    (such as the OME-XML description) or next-directory offset lie past the end.
    tifffile reads such a file without error as the pages it can reach, often
    only the first plane.

    Parameters
    ----------
    tf : tifffile.TiffFile
        The open file.
    series : tifffile.TiffPageSeries
        The series that will be read.
    p : Path
        The file's path, for the size and the message.
    """
    size = os.path.getsize(p)
    if series.dataoffset is not None:  # contiguous: one extent
        end = int(series.dataoffset) + int(series.nbytes)
    else:
        pages = (pg.aspage() if hasattr(pg, "aspage") else pg for pg in series.pages if pg is not None)
        end = max((o + c for pg in pages for o, c in zip(pg.dataoffsets, pg.databytecounts)), default=0)
    ij_images = int((tf.imagej_metadata or {}).get("images", 1)) if tf.is_imagej else 1
    if end > size or (ij_images > 1 and str(getattr(series, "kind", "imagej")).lower() != "imagej"):
        raise InputError(_message(p, f"its pixel data or ImageJ images are missing past byte {size}"))
    if not _directories_whole(tf, size):
        raise InputError(_message(p, f"its image directories or metadata point past its end, byte {size}"))


def _message(p: Path, what: str) -> str:
    return f"{p} is truncated or damaged ({what}); copy the file again from its source"


def _directories_whole(tf: Any, size: int) -> bool:
    """Whether every IFD of the main chain, with its tag values, lies inside the file and the chain ends (offset 0)."""
    tiff, fh = tf.tiff, tf.filehandle
    if tiff.is_ndpi or (tiff.version == 42 and size > 2**32):  # 64-bit NDPI offsets; a classic TIFF past 4 GB
        return True  # (LSM, ImageJ) has 32-bit offsets that wrap: not walked here (its pixel extents are checked)
    fh.seek(4 if tiff.version == 42 else 8)
    offset, seen = int(struct.unpack(tiff.offsetformat, fh.read(tiff.offsetsize))[0]), set()
    while offset != 0:
        if offset in seen or offset >= size:  # a loop, or a directory past the end
            return False
        seen.add(offset)
        offset = _next_directory(fh, tiff, offset, size)
        if offset < 0:
            return False
    return True


def _next_directory(fh: Any, tiff: Any, offset: int, size: int) -> int:
    """The next-IFD offset of the IFD at ``offset``; -1 when the IFD or one of its tag values is cut off."""
    from tifffile import TIFF

    fh.seek(offset)
    head = fh.read(tiff.tagnosize)
    if len(head) < tiff.tagnosize:
        return -1
    tagno = struct.unpack(tiff.tagnoformat, head)[0]
    entries = fh.read(tagno * tiff.tagsize + tiff.offsetsize)
    if tagno > _MAX_TAGS or len(entries) < tagno * tiff.tagsize + tiff.offsetsize:
        return -1
    for i in range(tagno):
        _, dtype, count, value = struct.unpack(tiff.tagheaderformat, entries[i * tiff.tagsize : (i + 1) * tiff.tagsize])
        nbytes = count * struct.calcsize(tiff.byteorder + TIFF.DATA_FORMATS.get(dtype, "1B"))
        if nbytes > tiff.tagoffsetthreshold and _offset(tiff, value) + nbytes > size:
            return -1
    return int(struct.unpack(tiff.offsetformat, entries[-tiff.offsetsize :])[0])


def _offset(tiff: Any, value: bytes) -> int:
    """The offset held in a tag entry's value field (4 or 8 bytes)."""
    return int(struct.unpack(tiff.byteorder + ("I" if len(value) == 4 else "Q"), value)[0])
