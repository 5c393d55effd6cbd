"""Output stores for batch denoising: create, refuse, resume and finish.

Every output is first computed into a Zarr array (the final store for Zarr and
OME-Zarr outputs; a hidden ``.NAME.partial.zarr`` next to a TIFF output). Each
finished chunk leaves an empty marker file in ``.selfsup_done/`` inside that
array's folder, written after the chunk's data, so a killed run resumes from
the chunks that are certainly complete. Markers are plain files so dask
workers on other machines can write them to a shared file system.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import Image, ngff, split_zarr_path, write_tiff

STATE_KEY = "selfsup_denoise"
DONE_DIR = ".selfsup_done"


class OutputError(ValueError):
    """The output cannot be written as asked (exists, unfinished, or would touch the input)."""


class CastArray:
    """Write-through wrapper that rounds and clips float blocks into an integer array."""

    def __init__(self, arr: Any) -> None:
        self.arr, self.shape, self.dtype = arr, arr.shape, np.dtype(arr.dtype)

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            value = np.clip(np.rint(value), info.min, info.max)
        self.arr[index] = np.asarray(value).astype(self.dtype, copy=False)


@dataclass(frozen=True)
class OutSpec:
    """Where one output goes: the final path and the Zarr array it is computed into."""

    dst: Path
    fmt: str
    zarr_format: int
    work: Path
    inner: str

    @property
    def array_dir(self) -> Path:
        """Folder of the level-0 array inside the work store."""
        return self.work / self.inner if self.inner else self.work

    @property
    def done_dir(self) -> Path:
        """Folder of the completed-chunk markers."""
        return self.array_dir / DONE_DIR


def plan_out(dst: Path, fmt: str, zarr_format: int = 3) -> OutSpec:
    """Describe an output of format ``tiff``, ``zarr`` or ``ome-zarr`` at ``dst``."""
    if fmt == "tiff":
        return OutSpec(dst, fmt, 3, dst.with_name(f".{dst.name}.partial.zarr"), "")
    if fmt == "ome-zarr":
        return OutSpec(dst, fmt, zarr_format, dst, "0")
    store, inner = split_zarr_path(dst) or (dst, "")
    return OutSpec(dst, fmt, zarr_format, store, inner)


def _open_array(spec: OutSpec, mode: str = "r+") -> Any:
    import zarr

    return zarr.open_array(str(spec.work), mode=mode, path=spec.inner or None)


def state(spec: OutSpec) -> tuple[str, dict[str, Any]]:
    """``absent``, ``partial`` or ``complete``, with the stored run record."""
    if spec.fmt == "tiff" and spec.dst.exists():
        return "complete", {}
    if not spec.array_dir.exists():
        other = spec.fmt == "tiff" or (spec.fmt == "zarr" and bool(spec.inner))
        return ("partial", {}) if not other and spec.dst.exists() else ("absent", {})
    try:
        rec = dict(_open_array(spec, "r").attrs.get(STATE_KEY, {}))
    except Exception:  # unreadable leftovers count as an unfinished output
        return "partial", {}
    return ("complete" if rec.get("complete") and spec.fmt != "tiff" else "partial"), rec


def remove(spec: OutSpec) -> None:
    """Delete an output and its work store (only what this tool writes)."""
    if spec.fmt == "tiff":
        with contextlib.suppress(FileNotFoundError):
            spec.dst.unlink()
        shutil.rmtree(spec.work, ignore_errors=True)
    elif spec.inner and spec.fmt == "zarr":
        shutil.rmtree(spec.array_dir, ignore_errors=True)
    else:
        shutil.rmtree(spec.work, ignore_errors=True)


def prepare(
    spec: OutSpec,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    record: dict[str, Any],
    *,
    overwrite: bool,
    resume: bool,
) -> Any | None:
    """Create (or reopen, with ``resume``) the work array; None when the output is already complete.

    Raises
    ------
    OutputError
        If the output exists and neither ``overwrite`` nor a matching ``resume`` allows going on.
    """
    st, rec = state(spec)
    if st == "complete" and resume and not overwrite:
        return None
    if st == "partial" and resume and not overwrite:
        if rec.get("fingerprint") != record["fingerprint"]:
            raise OutputError(
                f"{spec.dst} was started with another model, options or input; pass --overwrite to start again"
            )
        return _open_array(spec)
    if st != "absent":
        if not overwrite:
            what = "exists" if st == "complete" else "is an unfinished output (use --resume to continue it)"
            raise OutputError(f"{spec.dst} {what}; pass --overwrite to replace it")
        remove(spec)
    return _create(spec, shape, chunks, dtype, record)


def _create(spec: OutSpec, shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype, record: dict) -> Any:
    import zarr

    spec.work.parent.mkdir(parents=True, exist_ok=True)
    if spec.fmt == "ome-zarr" or spec.inner:
        group = zarr.open_group(str(spec.work), mode="a", zarr_format=spec.zarr_format)
        arr = group.create_array(spec.inner, shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    else:
        arr = zarr.create_array(
            str(spec.work), shape=shape, chunks=chunks, dtype=dtype, zarr_format=spec.zarr_format, fill_value=0
        )
    arr.attrs[STATE_KEY] = {**record, "complete": False}
    spec.done_dir.mkdir(parents=True, exist_ok=True)
    return arr


def done_keys(spec: OutSpec) -> set[str]:
    """Keys of the chunks already complete."""
    return {p.name for p in spec.done_dir.iterdir()} if spec.done_dir.exists() else set()


def mark_done(done_dir: str | Path, key: str) -> None:
    """Record chunk ``key`` as complete (after its data was written)."""
    Path(done_dir, key).touch()


def finish(spec: OutSpec, arr: Any, image: Image, axes: str, levels: int | None) -> None:
    """Turn a complete work array into the final output (TIFF, Zarr or OME-Zarr)."""
    if spec.fmt == "tiff":
        write_tiff(spec.dst, arr, axes, image.scale, image.unit)
        shutil.rmtree(spec.work, ignore_errors=True)
        return
    shutil.rmtree(spec.done_dir, ignore_errors=True)
    rec = dict(arr.attrs.get(STATE_KEY, {}))
    if spec.fmt == "zarr":
        arr.attrs.update({"axes": list(axes), "pixel_sizes": image.scale, "unit": image.unit})
    else:
        import zarr

        group = zarr.open_group(str(spec.work), mode="r+")
        src = image.meta.get("ngff") if image.kind == "ome-zarr" else None
        n = levels or image.meta.get("levels") or ngff.default_levels(tuple(arr.shape), axes)
        factors = ngff.level_factors(src, axes, n)
        ngff.write_pyramid(group, factors)
        ngff.write_multiscale_attrs(group, ngff.build_multiscale(axes, image.scale, image.unit, factors, src))
    arr.attrs[STATE_KEY] = {**rec, "complete": True}
