"""Batch planning: options, per-input results, output names and the work units of an image.

Each input is split into work units that are exactly the output's Zarr chunks
(one sample and time point, all channels, ``tile`` pixels per spatial axis).
Units are independent: the engine reads the model's margin around each one from
the input, so the result does not depend on how units are scheduled.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..engine.model import Model
from ..io import expand_inputs as _expand_paths
from ..io import format_of_path, is_image_path, is_tiff, split_zarr_path

FORMATS = ("tiff", "zarr", "ome-zarr")
_SUFFIX = {"tiff": ".tif", "zarr": ".zarr", "ome-zarr": ".ome.zarr"}
_DOUBLE = (".ome.tif", ".ome.tiff", ".ome.zarr")


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
    accept_suspect: bool = False


@dataclass
class Result:
    """What happened to one input: status ``done``, ``skipped``, ``failed`` or ``suspect`` (a self-check failed)."""

    src: str
    dst: str | None
    status: str
    reason: str = ""
    megapixels: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


class Reporter:
    """Progress callbacks (no-ops here; the CLI draws bars)."""

    def file_start(self, src: str, total_px: int, done_px: int) -> None:
        """A file begins: ``total_px`` output pixels, ``done_px`` already done (resume)."""

    def file_advance(self, px: int) -> None:
        """``px`` more output pixels are written."""

    def file_end(self, result: Result) -> None:
        """A file is finished, skipped or failed."""


def expand_inputs(patterns: list[str]) -> tuple[list[str], list[Result]]:
    """Files, directories (their TIFF files and Zarr stores) and globs -> input paths, and failed results for misses."""
    found, missing = _expand_paths(patterns)
    return found, [Result(pat, None, "failed", why) for pat, why in missing]


def guess_format(src: str) -> str:
    """Output format matching an input path (OME-Zarr is recognised when opened)."""
    return "tiff" if is_tiff(src) else "zarr"


def is_directory_output(output: str, many: bool) -> bool:
    """Whether ``-o output`` is a folder that receives one output per input."""
    out = Path(output)
    return many or out.is_dir() and not is_image_path(out)


def output_format(output: str, many: bool, fmt: str | None, input_kind: str) -> str:
    """Format of an output: ``--format``, else the ``-o`` suffix, else the input's.

    A ``.zarr`` name keeps an OME-Zarr input's format; ``.ome.zarr`` asks for OME-Zarr.

    Raises
    ------
    ConfigError
        If ``--format`` contradicts the ``-o`` suffix (``-o x.tif --format zarr``).
    """
    named = None if is_directory_output(output, many) else format_of_path(output)
    if fmt and named and fmt != named and not (fmt == "ome-zarr" and named == "zarr"):
        raise ConfigError(f"--format {fmt} contradicts the output name {output} ({named}); "
                          f"rename the output or drop --format")  # fmt: skip
    if fmt:
        return fmt
    if named == "zarr" and input_kind == "ome-zarr":
        return input_kind
    return named or input_kind


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
    if is_directory_output(output, many):
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


def sample_hash(data: object, units: list[tuple[str, tuple]]) -> str:
    """Hash of the pixels of the first, middle and last work units: tells one input from another cheaply."""
    h = hashlib.sha256()
    for i in sorted({0, len(units) // 2, len(units) - 1} if units else set()):
        h.update(np.ascontiguousarray(np.asarray(data[units[i][1]])).tobytes())  # type: ignore[index]
    return h.hexdigest()[:32]


def region_px(region: tuple, axes: str) -> int:
    """Output pixels (per channel) in a region."""
    return int(np.prod([r.stop - r.start for r, a in zip(region, axes) if a != "C"]))


def default_edge(model: Model, device: str) -> int:
    """Work-unit edge: the automatic tile, capped at 512 (2D) or 64 (3D) to bound memory per unit."""
    from ..engine.device import pick_device
    from ..engine.predict import auto_tile

    cap = 512 if model.ndim == 2 else 64
    edge = min(cap, auto_tile(model, pick_device(device), False))
    return max(model.multiple, edge - edge % model.multiple)


def check_model_options(model: Model, opts: BatchOptions) -> None:
    """Raise if ``opts`` asks for outputs the model cannot give."""
    if (opts.uncertainty or opts.prior) and model.algorithm != "blindspot":
        raise ConfigError(f"--uncertainty and --prior need a blind-spot model; this one is {model.algorithm!r}")
