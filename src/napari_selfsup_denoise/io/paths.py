"""Paths: TIFF by suffix, Zarr stores and arrays inside them, directories and globs; the check of every output."""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable
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


class OutputError(ValueError):
    """A file cannot be written as asked: it is (or is inside) an input, it exists, or its folder is not writable."""


def _root(path: str | os.PathLike[str]) -> Path:
    """What writing ``path`` touches: the file itself, or the whole Zarr store it lies in; symlinks resolved."""
    zs = split_zarr_path(path)
    return (zs[0] if zs else Path(path)).resolve()


def _same_or_nested(a: Path, b: Path) -> bool:
    if a == b or a in b.parents or b in a.parents:
        return True
    try:  # hard links and bind mounts: the same file under two names
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def input_clash(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]]) -> str | None:
    """The input that writing ``path`` would touch (same file, same Zarr store, or one inside the other), or None."""
    dst = _root(path)
    for src in inputs:
        if _same_or_nested(dst, _root(src)):
            return str(src)
    return None


def _check_folder(path: Path) -> None:
    anc = path.parent
    while not anc.exists() and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise OutputError(f"cannot write {path}: {anc} is a file, not a folder; choose another path")
    try:  # a real write probe: os.access is wrong for root and for read-only mounts
        with tempfile.TemporaryFile(dir=anc):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write {path}: the folder {anc} is not writable ({exc.strerror}); "
                          "choose another path") from exc  # fmt: skip


def check_output_path(
    path: str | os.PathLike[str],
    inputs: Iterable[str | os.PathLike[str]] = (),
    *,
    overwrite: bool = False,
    exists_ok: bool = False,
    what: str = "output",
) -> Path:
    """Check, before any work, that ``path`` may be written; the one check for every file this tool writes.

    Parameters
    ----------
    path : path-like
        The file or store to be written (outputs, models, uncertainty files, settings).
    inputs : iterable of path-like
        The inputs of the run; ``path`` must not be one, lie inside one's Zarr store, or contain one.
        Paths are resolved (symlinks followed) and hard links are recognised. ``overwrite`` never overrides this.
    overwrite : bool
        Whether an existing ``path`` may be replaced.
    exists_ok : bool
        Skip the existence check (the caller decides, e.g. to resume an unfinished output).
    what : str
        What ``path`` is, for the message (``output``, ``model file``, ...).

    Raises
    ------
    OutputError
        If ``path`` is an input, exists without ``overwrite``, or its folder cannot be written.
    """
    p = Path(path)
    src = input_clash(p, inputs)
    if src is not None:
        raise OutputError(f"the {what} {p} would overwrite the input {src}; choose another path "
                          "(inputs are never written, even with --overwrite)")  # fmt: skip
    if not exists_ok and not overwrite and (p.exists() or p.is_symlink()):
        raise OutputError(f"the {what} {p} exists; pass --overwrite to replace it")
    _check_folder(p)
    return p


def model_output_path(
    path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = (), *, overwrite: bool = False
) -> Path:
    """The checked path of a model file to write: ``.sdmodel`` added when there is no suffix; images refused.

    Raises
    ------
    OutputError
        If the name is an image's (``.tif``, ``.zarr``), or :func:`check_output_path` refuses it.
    """
    from ..engine.model_file import SUFFIX as MODEL_SUFFIX  # torch: imported when a model is written, not with io
    from ..engine.model_file import model_path

    p = model_path(path)
    check_output_path(p, inputs, overwrite=overwrite, what="model file")
    if p.name.lower().endswith((*TIFF_SUFFIXES, ".zarr")):
        raise OutputError(f"{p} names an image; write the model file as NAME{MODEL_SUFFIX}")
    return p


def format_of_path(path: str | os.PathLike[str]) -> str | None:
    """Image format a path names by its suffix: ``tiff``, ``ome-zarr``, ``zarr``, or None."""
    low = str(path).lower().rstrip("/")
    if low.endswith(TIFF_SUFFIXES):
        return "tiff"
    if low.endswith(".ome.zarr"):
        return "ome-zarr"
    if ".zarr" in low and split_zarr_path(path) is not None:
        return "zarr"
    return None


_ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def file_identity(path: str | os.PathLike[str]) -> str:
    """Size and modification time of an input: of a file, or of a Zarr store's metadata files.

    Cheap (no pixels read) and stable while nothing writes the input; ``--resume``
    compares it. A Zarr chunk edited in place leaves the metadata alone: the run
    record's sampled pixel hash is what tells such an edit.
    """
    p = Path(path)
    files = [p] if p.is_file() else [p / n for n in _ZARR_METADATA if (p / n).is_file()]
    return " ".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
