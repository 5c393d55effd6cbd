"""Denoise many files, or stacks larger than memory, chunk by chunk; resumable; dask when asked.

Each input is split into work units that are exactly the output's Zarr chunks
(one sample and time point, all channels, ``tile`` pixels per spatial axis).
A unit is predicted with :func:`engine.predict.predict` over that region; the
engine reads the model's margin around it from the input (mirrored at the
image border), so units are independent and the result does not depend on
how they are scheduled. Units stream from the input store into the output
store, one at a time per worker, so memory does not grow with the stack.
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _store
from .api import drain
from .axes import AxesError
from .config import ConfigError, PredictConfig
from .engine.data import DataError
from .engine.model import Model, ModelFileError
from .io import Image, InputError, is_tiff, read_image, split_zarr_path

FORMATS = ("tiff", "zarr", "ome-zarr")
_SUFFIX = {"tiff": ".tif", "zarr": ".zarr", "ome-zarr": ".ome.zarr"}
_DOUBLE = (".ome.tif", ".ome.tiff", ".ome.zarr")
EXPECTED_ERRORS = (InputError, AxesError, ConfigError, DataError, ModelFileError, _store.OutputError, OSError)


class Interrupted(RuntimeError):
    """The stop event was set; the output is left resumable."""


@dataclass(frozen=True)
class BatchOptions:
    """How ``denoise`` runs; see ``selfsup-denoise denoise --help`` for each option."""

    axes: str | None = None
    tile: int | None = None
    tta: bool = False
    device: str = "auto"
    prior: bool = False
    uncertainty: bool = False
    overwrite: bool = False
    resume: bool = False
    fmt: str | None = None
    dtype: str = "float32"
    scheduler: str | None = None
    dask_local: int | None = None
    levels: int | None = None


@dataclass
class Result:
    """What happened to one input."""

    src: str
    dst: str | None
    status: str
    reason: str = ""
    megapixels: float = 0.0
    seconds: float = 0.0


class Reporter:
    """Progress callbacks (no-ops here; the CLI draws bars)."""

    def file_start(self, src: str, total_px: int, done_px: int) -> None:
        """A file begins: ``total_px`` output pixels, ``done_px`` already done (resume)."""

    def file_advance(self, px: int) -> None:
        """``px`` more output pixels are written."""

    def file_end(self, result: Result) -> None:
        """A file is finished, skipped or failed."""


def _is_image_path(p: Path) -> bool:
    return is_tiff(p) or p.suffix.lower() == ".zarr"


def expand_inputs(patterns: list[str]) -> tuple[list[str], list[Result]]:
    """Files, directories (their TIFF files and Zarr stores) and globs -> input paths, and misses."""
    found: list[str] = []
    missing: list[Result] = []
    for pat in patterns:
        p = Path(pat)
        if p.is_dir() and not _is_image_path(p) and split_zarr_path(p) is None:
            hits = sorted(str(c) for c in p.iterdir() if _is_image_path(c) and not c.name.startswith("."))
        elif p.exists() or split_zarr_path(p) is not None and split_zarr_path(p)[0].exists():
            hits = [pat]
        else:
            hits = sorted(glob.glob(pat, recursive=True)) if glob.has_magic(pat) else []
        if not hits:
            why = "no TIFF or Zarr inside" if p.is_dir() else "no such file, or the pattern matches nothing"
            missing.append(Result(pat, None, "failed", why))
        found += [h for h in hits if h not in found]
    return found, missing


def guess_format(src: str) -> str:
    """Output format matching an input path (OME-Zarr is recognised when opened)."""
    return "tiff" if is_tiff(src) else "zarr"


def _name(src: str) -> str:
    return Path(split_zarr_path(src)[0] if split_zarr_path(src) else src).name if not is_tiff(src) else Path(src).name


def _stem(name: str) -> tuple[str, str]:
    low = name.lower()
    for suf in (*_DOUBLE, ".tif", ".tiff", ".zarr"):
        if low.endswith(suf):
            return name[: -len(suf)], name[-len(suf) :]
    return name, ""


def output_path(src: str, output: str, many: bool, fmt: str) -> Path:
    """Final output path of ``src``: ``output`` itself, or ``output/<input name>`` for several inputs."""
    out = Path(output)
    if many or out.is_dir() and not _is_image_path(out):
        stem, _ = _stem(_name(src))
        out = out / (stem + _SUFFIX[fmt])
    return out


def tagged(path: Path, tag: str) -> Path:
    """``a/b.ome.tif`` + ``_uncertainty`` -> ``a/b_uncertainty.ome.tif`` (inside a Zarr store: the array name)."""
    zs = split_zarr_path(path)
    if zs and zs[1]:
        return path.with_name(path.name + tag)
    stem, suf = _stem(path.name)
    return path.with_name(stem + tag + suf)


def model_hash(model: Model) -> str:
    """Hash of a model's weights and metadata (decides whether an output may be resumed)."""
    h = hashlib.sha256(json.dumps(model.metadata(), sort_keys=True, default=str).encode())
    for k, v in sorted(model.net.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:32]


def unit_grid(
    shape: tuple[int, ...], axes: str, edge: int, ndim: int
) -> tuple[tuple[int, ...], list[tuple[str, tuple]]]:
    """Chunk shape and ``(key, region)`` of every work unit of an image."""
    steps = []
    for a, n in zip(axes, shape):
        spatial = a in "YX" or (a == "Z" and ndim == 3)
        steps.append(n if a == "C" else min(edge, n) if spatial else 1)
    units = []
    for start in itertools.product(*(range(0, n, s) for n, s in zip(shape, steps))):
        key = ".".join(str(i // s) for i, s in zip(start, steps))
        units.append((key, tuple(slice(i, min(i + s, n)) for i, s, n in zip(start, steps, shape))))
    return tuple(steps), units


def region_px(region: tuple, axes: str) -> int:
    """Output pixels (per channel) in a region."""
    return int(np.prod([r.stop - r.start for r, a in zip(region, axes) if a != "C"]))


class CastArray:
    """Write-through wrapper that rounds and clips float blocks into an integer array."""

    def __init__(self, arr: Any) -> None:
        self.arr, self.shape, self.dtype = arr, arr.shape, np.dtype(arr.dtype)

    def __setitem__(self, index: Any, value: np.ndarray) -> None:
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            value = np.clip(np.rint(value), info.min, info.max)
        self.arr[index] = np.asarray(value).astype(self.dtype)


def default_edge(model: Model, device: str) -> int:
    """Work-unit edge: the automatic tile, capped at 512 (2D) or 64 (3D) to bound memory per unit."""
    from .engine.device import pick_device
    from .engine.predict import auto_tile

    cap = 512 if model.ndim == 2 else 64
    edge = min(cap, auto_tile(model, pick_device(device), False))
    return max(model.multiple, edge - edge % model.multiple)


def predict_units(
    model: Model, data: Any, axes: str, pcfg: PredictConfig, outs: list[Any], units: list, on_unit
) -> None:
    """Predict ``units`` one by one into ``outs`` (denoised[, uncertainty]); ``on_unit(key, px)`` after each."""
    unc = outs[1] if len(outs) > 1 else None
    for key, region in units:
        drain(predict_region(model, data, axes, pcfg, outs[0], unc, region))
        on_unit(key, region_px(region, axes))


def predict_region(model: Model, data: Any, axes: str, pcfg: PredictConfig, out: Any, unc: Any, region: tuple) -> Any:
    """The engine's prediction generator restricted to ``region``."""
    from .engine.predict import predict

    return predict(model, data, pcfg, axes=axes, out=out, uncertainty_out=unc, region=region)


def _check_model_options(model: Model, opts: BatchOptions) -> None:
    if (opts.uncertainty or opts.prior) and model.algorithm != "blindspot":
        raise ConfigError(f"--uncertainty and --prior need a blind-spot model; this one is {model.algorithm!r}")


def denoise_files(
    model: Model,
    inputs: list[str],
    output: str,
    opts: BatchOptions,
    *,
    model_path: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
) -> list[Result]:
    """Denoise every input (files, directories, globs) into ``output``; never raises for one bad file.

    Returns
    -------
    list of Result
        One per input, in order; status ``done``, ``skipped`` or ``failed``.
    """
    from ._runner import FileRunner

    _check_model_options(model, opts)
    rep = reporter or Reporter()
    paths, results = expand_inputs(inputs)
    for r in results:
        rep.file_end(r)
    many = len(inputs) > 1 or len(paths) > 1 or any(Path(i).is_dir() and not _is_image_path(Path(i)) for i in inputs)
    many = many or any(glob.has_magic(i) for i in inputs)
    with FileRunner(model, opts, model_path, rep, stop) as runner:
        for src in paths:
            t0 = time.perf_counter()
            try:
                res = runner.run(src, lambda fmt, s=src: output_path(s, output, many, fmt))
            except Interrupted:
                raise
            except EXPECTED_ERRORS as exc:
                res = Result(src, None, "failed", str(exc))
            except Exception as exc:  # one bad file must not stop the others
                res = Result(src, None, "failed", f"{type(exc).__name__}: {exc}")
            res.seconds = round(time.perf_counter() - t0, 2)
            results.append(res)
            rep.file_end(res)
    return results


def open_training_data(inputs: list[str], axes: str | None) -> tuple[Any, str, list[Image]]:
    """Open one or more training inputs lazily; several are stacked along S (same shape required)."""
    from ._stack import StackedArray

    paths, missing = expand_inputs(inputs)
    if missing:
        raise InputError(f"{missing[0].src}: {missing[0].reason}")
    images = [read_image(p, axes) for p in paths]
    ax = axes or images[0].axes_or_guess()
    if len(images) == 1:
        return images[0].data, ax, images
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError(f"training files must share one shape to be stacked; found {sorted(shapes)}")
    stacked = StackedArray([im.data for im in images], ax)
    return stacked, stacked.axes, images
