"""``run --resume``: an output of an earlier run is continued by the model that made it, never by a new one.

Training is not bit-reproducible in general (a time budget, another machine), so
a new ``run`` makes a different model, and ``--resume`` refuses outputs made by
another model. ``run --resume`` therefore never trains when an output exists:
it reuses the ``--save-model`` file that made the outputs, or stops at once and
names the ``denoise ... --resume`` command that continues them.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

from ..batch.plan import model_hash
from ..engine.model import Model, load_model
from ..engine.model_file import ModelFileError
from ..io import OutputError

FALLBACK_GLOB = "selfsup-denoise-*.sdmodel"  # the names cli._commands._keep gives
_MAX_CANDIDATES = 10  # fallback files looked at (newest first)
_DENOISE_FLAGS = ("axes", "device", "tile", "fmt", "dtype", "levels", "scheduler", "dask_local")
_DENOISE_SWITCHES = ("tta", "prior", "accept_suspect")


def continue_command(args: argparse.Namespace, model: str | Path) -> str:
    """The ``selfsup-denoise denoise ... --resume`` command that continues what ``run`` (``args``) started."""
    words = ["selfsup-denoise", "denoise", *args.inputs, "-m", str(model), "-o", args.output, "--resume"]
    defaults = {"device": "auto", "dtype": "float32"}
    for name in _DENOISE_FLAGS:
        value = getattr(args, name, None)
        if value is not None and value != defaults.get(name):
            flag = {"fmt": "--format", "dask_local": "--dask"}.get(name, f"--{name.replace('_', '-')}")
            words += [flag, f"local:{value}" if name == "dask_local" else str(value)]
    words += [f"--{name.replace('_', '-')}" for name in _DENOISE_SWITCHES if getattr(args, name, False)]
    return shlex.join(words)


def resumed_model(args: argparse.Namespace, found: list[tuple[Path, str, dict[str, Any]]]) -> Model:
    """The model that made the existing outputs ``found``, from ``--save-model``; else an error naming the way on.

    Parameters
    ----------
    args : argparse.Namespace
        The ``run`` command's arguments (with ``--resume``).
    found : list of (path, state, record)
        The outputs that exist, as :func:`napari_selfsup_denoise.batch.check_outputs` returns them.

    Raises
    ------
    OutputError
        When no ``--save-model`` file made them: a new run's model could not continue them.
    """
    dst, state, _ = found[0]
    made_by = {rec.get("parts", {}).get("model") if isinstance(rec.get("parts"), dict) else None for *_, rec in found}
    if None in made_by:
        raise OutputError(f"{dst} exists but holds no record of the run that made it, so it cannot be resumed; "
                          "pass --overwrite to replace it or choose another -o")  # fmt: skip
    what = f"{dst} is the {'complete' if state == 'complete' else 'unfinished'} output of an earlier run"
    if args.save_model and Path(args.save_model).is_file():
        model = _load(args.save_model)
        if model is not None and made_by == {model_hash(model)}:
            print(f"{what}: resuming with its model {args.save_model} (not training)", file=sys.stderr)
            return model
        raise OutputError(f"{what}, made by another model than {args.save_model}; continue it with the model that "
                          "made it (selfsup-denoise denoise -m MODEL ... --resume), or pass --overwrite to "
                          "start again")  # fmt: skip
    known = _fallback_model(made_by, [Path(args.output).parent, Path.cwd(), Path(tempfile.gettempdir())])
    model_word = str(known) if known else "MODEL"
    hint = "" if known else (" (MODEL: the file that run saved, its --save-model file or the "
                             f"{FALLBACK_GLOB} file it printed)")  # fmt: skip
    raise OutputError(f"{what}; run --resume would train a new model, which cannot continue it. To continue: "
                      f"{continue_command(args, model_word)}{hint}; or pass --overwrite to start again")  # fmt: skip


def _load(path: str | Path) -> Model | None:
    try:
        return load_model(path)
    except (ModelFileError, OSError, ValueError):
        return None


def _fallback_model(made_by: set[str | None], folders: list[Path]) -> Path | None:
    """The newest fallback model file in ``folders`` whose hash is the one that made the outputs."""
    files = {p.resolve() for folder in folders for p in folder.glob(FALLBACK_GLOB) if p.is_file()}
    for path in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)[:_MAX_CANDIDATES]:
        model = _load(path)
        if model is not None and made_by == {model_hash(model)}:
            return path
    return None
