"""The outputs of each input: where they go, checked before any work (``run`` checks them before training)."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

from ..io import Image, check_output_path, is_image_path, read_image
from . import store as _store
from .plan import BatchOptions, expand_inputs, output_format, output_path, tagged


def many_inputs(inputs: list[str], paths: list[str]) -> bool:
    """Whether ``inputs`` (expanded to ``paths``) name several images: outputs then go into a folder."""
    many = len(inputs) > 1 or len(paths) > 1 or any(Path(i).is_dir() and not is_image_path(Path(i)) for i in inputs)
    return many or any(glob.has_magic(i) for i in inputs)


def plan_outputs(img: Image, output: str, many: bool, opts: BatchOptions) -> list[_store.OutSpec]:
    """The outputs of one input (denoised[, uncertainty]), each checked with :func:`io.check_output_path`."""
    fmt = output_format(output, many, opts.fmt, img.kind)
    dst = output_path(img.path, output, many, fmt)
    zf = int(img.meta.get("zarr_format", 3))
    specs = [_store.plan_out(dst, fmt, zf)]
    if opts.uncertainty:
        specs.append(_store.plan_out(tagged(dst, "_uncertainty"), fmt, zf))
    for spec, what in zip(specs, ("output", "uncertainty output")):
        for path in {spec.dst, spec.work}:
            check_output_path(path, [img.path], exists_ok=True, what=what)
    return specs


def check_outputs(inputs: list[str], output: str, opts: BatchOptions) -> list[tuple[Path, str, dict[str, Any]]]:
    """Check every output of ``inputs`` before any work (``run`` calls it before training).

    Returns
    -------
    list of (path, state, record)
        The outputs that exist (``partial`` or ``complete``) with their stored run records.

    Raises
    ------
    OutputError, ConfigError, InputError
        For the first output that is an input, exists without ``--overwrite``/``--resume``,
        cannot be created, or whose ``--format`` contradicts its name.
    """
    paths, _ = expand_inputs(inputs)
    many, found = many_inputs(inputs, paths), []
    for src in paths:
        img = read_image(src)
        try:
            for spec in plan_outputs(img, output, many, opts):
                _store.check_existing(spec, overwrite=opts.overwrite, resume=opts.resume)
                st, rec = _store.state(spec)
                found += [(spec.dst, st, rec)] if st != "absent" else []
        finally:
            img.close()
    return found
