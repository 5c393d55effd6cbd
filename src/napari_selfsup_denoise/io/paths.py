"""Input paths: TIFF by suffix, Zarr stores and arrays inside them, directories and globs."""

from __future__ import annotations

import glob
import os
from pathlib import Path

TIFF_SUFFIXES = (".tif", ".tiff")


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


def is_image_path(p: Path) -> bool:
    """Whether ``p`` names a TIFF file or a Zarr store by its suffix."""
    return is_tiff(p) or p.suffix.lower() == ".zarr"


def expand_inputs(patterns: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files, directories (their TIFF files and Zarr stores) and globs -> input paths, and ``(pattern, why)`` misses."""
    found: list[str] = []
    missing: list[tuple[str, str]] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir() and not is_image_path(p) and split_zarr_path(p) is None:
            hits = sorted(str(c) for c in p.iterdir() if is_image_path(c) and not c.name.startswith("."))
        elif p.exists() or split_zarr_path(p) is not None and split_zarr_path(p)[0].exists():
            hits = [pat]
        else:
            hits = sorted(glob.glob(pat, recursive=True)) if glob.has_magic(pat) else []
        if not hits:
            why = "no TIFF or Zarr inside" if p.is_dir() else "no such file, or the pattern matches nothing"
            missing.append((pat, why))
        found += [h for h in hits if h not in found]
    return found, missing
