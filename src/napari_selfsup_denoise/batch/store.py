"""Output stores for batch denoising: create, refuse, resume and finish.

Every output is first computed into a Zarr array (the final store for Zarr and
OME-Zarr outputs; a hidden ``.NAME.partial.zarr`` next to a TIFF output). Each
finished chunk is recorded in ``.selfsup_done/`` inside that array's folder,
after the chunk's data is written, so a killed run resumes from the chunks that
are certainly complete: a local run appends the chunk's key as a line to
``done.log`` there (:class:`DoneLog`); dask workers, which may run on other
machines sharing the file system, leave an empty file named after the key
(:func:`mark_done`). Both are read on resume.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..io import Image, OutputError, ngff, read_tiff_record, split_zarr_path, write_tiff

STATE_KEY = "selfsup_denoise"
DONE_DIR = ".selfsup_done"
DONE_LOG = "done.log"  # in DONE_DIR: a local run's finished chunk keys, a line each
_KEY = re.compile(r"\d+(\.\d+)*")  # a chunk key (batch.plan.unit_grid): anything else is not a finished chunk
_PARTS = {"model": "model", "options": "options (tile, --tta, --prior, --uncertainty, --dtype, axes, format)"}
_PARTS |= {"input": "input file", "input_shape": "input shape or data type", "input_pixels": "input pixels"}
_PARTS |= {"input_file": "input size or modification time"}


class CastArray:
    """Write-through wrapper that rounds and clips float blocks into an integer array."""

    def __init__(self, arr: Any) -> None:
        self.arr, self.shape, self.dtype = arr, arr.shape, np.dtype(arr.dtype)

    def cast(self, value: np.ndarray) -> np.ndarray:
        """``value`` as the array stores it: rounded and clipped into an integer type, else converted."""
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            value = np.clip(np.rint(value), info.min, info.max)
        return np.asarray(value).astype(self.dtype, copy=False)

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        self.arr[index] = self.cast(value)


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
        return "complete", read_tiff_record(spec.dst)
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


def remove_each(specs: list[OutSpec]) -> None:
    """Delete outputs created by a run the self-check refused."""
    for s in specs:
        remove(s)


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
    if st != "absent" and resume and not overwrite:
        check_same_run(spec, st, rec, record)
        return None if st == "complete" else dense(_open_array(spec))
    if st != "absent":
        check_existing(spec, overwrite=overwrite, resume=resume)
        remove(spec)
    return _create(spec, shape, chunks, dtype, record)


def check_existing(spec: OutSpec, *, overwrite: bool, resume: bool) -> None:
    """Raise if the output exists (complete or unfinished) and neither ``overwrite`` nor ``resume`` is given."""
    st, _ = state(spec)
    if st == "absent" or overwrite or resume:
        return
    where = f" in {spec.work}" if spec.work != spec.dst else ""
    what = "exists" if st == "complete" else f"is an unfinished output{where} (--resume continues it)"
    raise OutputError(f"{spec.dst} {what}; pass --overwrite to replace it")


def abandon(specs: list[OutSpec], exc: Exception, n_units: int) -> Exception:
    """After a failed run: delete outputs with no finished chunk, else say how to continue; returns the error."""
    kept = len(done_keys(specs[0]))
    if kept == 0:
        for s in specs:
            remove(s)
        return exc
    return OutputError(f"{exc} ({kept} of {n_units} chunks are kept in {specs[0].work}: fix the cause and run again "
                       "with --resume to continue, or pass --overwrite to start again)")  # fmt: skip


def check_same_run(spec: OutSpec, st: str, rec: dict[str, Any], record: dict[str, Any]) -> None:
    """Raise unless the output ``spec`` (state ``st``, stored ``rec``) was made by the run described by ``record``.

    Raises
    ------
    OutputError
        Saying what differs (model, options, input file, shape, pixels), or that no record was kept.
    """
    if rec.get("fingerprint") == record["fingerprint"]:
        return
    what = "complete output" if st == "complete" else "unfinished output"
    old, new = rec.get("parts"), record["parts"]
    if not isinstance(old, dict):
        raise OutputError(f"{spec.dst}: this {what} holds no record of the model and input that made it, so it "
                          "cannot be resumed safely; pass --overwrite to start again")  # fmt: skip
    diff = [f"{label}{_was(k, old)}" for k, label in _PARTS.items() if old.get(k) != new.get(k)]
    raise OutputError(f"{spec.dst}: this {what} was made by another run (different: {', '.join(diff) or 'run'}); "
                      "--resume only continues the same run; pass --overwrite to start again")  # fmt: skip


def _was(key: str, parts: dict[str, Any]) -> str:
    return f" (was {parts[key]})" if key in ("input", "input_shape") and key in parts else ""


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
    return dense(arr)


def dense(arr: Any) -> Any:
    """``arr`` storing every chunk written, without zarr's comparison of each one with the fill value.

    By default zarr compares every chunk it writes with the fill value, to omit empty ones: ~0.6 ms
    per 512^2 float32 chunk, in its event loop, one chunk after another. Denoised output is dense;
    a chunk holding only the fill value is then stored instead of omitted (it reads the same).
    """
    with_config = getattr(arr, "with_config", None)
    return with_config({"write_empty_chunks": True}) if callable(with_config) else arr


def done_keys(spec: OutSpec) -> set[str]:
    """Keys of the chunks already complete: the marker files and the complete lines of the done log."""
    if not spec.done_dir.exists():
        return set()
    names = [p.name for p in spec.done_dir.iterdir() if p.name != DONE_LOG]
    log = spec.done_dir / DONE_LOG
    if log.exists():  # a last line without its newline was cut short: not a record
        names += log.read_bytes().decode("ascii", "replace").split("\n")[:-1]
    return {n for n in names if _KEY.fullmatch(n)}


def mark_done(done_dir: str | Path, key: str) -> None:
    """Record chunk ``key`` as complete (after its data was written) as a file of its own (dask workers)."""
    Path(done_dir, key).touch()


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


class DoneLog:
    """Record the chunks a local run completes as lines appended to one file, ``DONE_DIR/DONE_LOG``.

    One short append per chunk (after its data was written) instead of a file per chunk: no
    file to create per chunk (and none to delete at the end). A write either ends with its
    newline or is not read as a record; a line left incomplete by a crash is closed with a
    mark that makes it no key before anything else is appended.
    Use as a context manager.
    """

    def __init__(self, done_dir: str | Path) -> None:
        Path(done_dir).mkdir(parents=True, exist_ok=True)
        self.path = Path(done_dir, DONE_LOG)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            if os.fstat(self._fd).st_size and _last_byte(self.path) != b"\n":
                self._append(b"?\n")  # the cut line becomes "<part of a key>?": no key
        except BaseException:
            os.close(self._fd)
            raise

    def _append(self, data: bytes) -> None:
        if os.write(self._fd, data) != len(data):
            raise OSError(f"could not record a finished chunk in {self.path} (disk full?)")

    def mark(self, key: str) -> None:
        """Record chunk ``key`` as complete (after its data was written)."""
        self._append(f"{key}\n".encode("ascii"))

    def __enter__(self) -> DoneLog:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def finish(spec: OutSpec, arr: Any, image: Image, axes: str, levels: int | None, extra: dict | None = None) -> None:
    """Turn a complete work array into the final output (TIFF, Zarr or OME-Zarr); ``extra`` joins its record."""
    rec = {**dict(arr.attrs.get(STATE_KEY, {})), **(extra or {})}
    if spec.fmt == "tiff":
        write_tiff(spec.dst, arr, axes, image.scale, image.unit, record={**rec, "complete": True})
        shutil.rmtree(spec.work, ignore_errors=True)
        return
    shutil.rmtree(spec.done_dir, ignore_errors=True)
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
