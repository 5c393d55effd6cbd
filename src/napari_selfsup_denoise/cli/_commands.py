"""The four sub-commands; each returns the process exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ..axes import spatial_ndim
from ..batch import BatchOptions, Interrupted, check_outputs, denoise_files
from ..config import CLI_FLAGS, UNCERTAINTY_REMOVED, ConfigError, TrainConfig, from_dict, to_dict
from ..defaults import algorithm_choice
from ..engine.checks import SelfCheck
from ..engine.events import drain
from ..engine.model import Model, load_model
from ..engine.model_file import read_metadata
from ..engine.route import route_for
from ..io import expand_inputs, model_output_path, open_training_data
from ._prior import BUILTIN, builtin_files, start_for, start_rows, zero_shot
from ._progress import BarReporter, TrainBar, summary
from ._resume import continue_command, resumed_model

EXIT_SUSPECT = 4


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def train_config(args: argparse.Namespace, axes: str) -> TrainConfig:
    """TrainConfig from the flags and ``--set KEY=VALUE`` pairs (unknown keys are refused)."""
    given = {field: getattr(args, flag[2:].replace("-", "_")) for field, flag in CLI_FLAGS.items()}
    values = {field: value for field, value in given.items() if value is not None}
    if args.max_seconds is not None:
        values["max_seconds"] = args.max_seconds if args.max_seconds > 0 else None
    for item in args.set:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. --set depth=2), got {item!r}")
        values[key.strip()] = _parse_value(val.strip())
    return from_dict({**to_dict(TrainConfig()), **values, "axes": axes})


def _train(args: argparse.Namespace) -> Model:
    data, axes, images = open_training_data(args.inputs, args.axes)
    target = None
    if args.target:
        target, _, timgs = open_training_data(args.target, axes if len(args.target) == 1 else args.axes)
        images += timgs
    try:
        cfg = train_config(args, axes)
        choice = images[0].axes_choice(args.axes)  # the reason shown: "TYX (from the file)", "ZYX? (guessed: ...)"
        routed = route_for(cfg, data)  # auto measures the noise's correlation first (it may pick structn2v)
        what = routed.choice or algorithm_choice(cfg.algorithm, spatial_ndim(axes))  # "blindspot (auto: 2D: ...)"
        print(f"training {what} on {len(images) - (len(args.target or []))} input(s), axes {axes}"
              f"{'?' if choice.guessed else ''} ({choice.why}), "
              f"shape {tuple(data.shape)}", file=sys.stderr)  # fmt: skip
        from ..engine.train import train

        start = start_for(routed.config, tuple(data.shape), args.device)
        bar = TrainBar(args.quiet)
        try:
            model = drain(train(data, cfg, target=target, start=start, routed=routed), bar)
        finally:
            bar.close()
    finally:
        for im in images:
            im.close()
    s = model.summary
    print(f"trained {s.get('steps')} steps in {s.get('seconds')} s on {s.get('device')} "
          f"(ended by {s.get('ended_by')}, best val loss {s.get('best_val_loss')})", file=sys.stderr)  # fmt: skip
    check = model.check
    if check is not None:
        print(check.line(), file=sys.stderr)
        if not check.passed:
            print(f"warning: {check.verdict}. What to try: {check.advice}.", file=sys.stderr)
    return model


def _inputs(args: argparse.Namespace) -> list[str]:
    """Every input path of the command (patterns and what they expand to): no output may touch one."""
    pats = [*args.inputs, *(getattr(args, "target", None) or [])]
    return [*pats, *expand_inputs(pats)[0]]


def _save(model: Model, path: Path, inputs: list[str]) -> Path:
    """Save ``model`` to ``path``; if that fails, to a fallback file, and say where. Returns the file written."""
    try:
        written = model.save(path)
        print(f"saved {written}", file=sys.stderr)
        return written
    except OSError as exc:
        print(f"selfsup-denoise: error: could not write {path} ({exc})", file=sys.stderr)
    return _keep(model, path.parent, inputs)


def _keep(model: Model, near: Path, inputs: list[str]) -> Path:
    """Save ``model`` to a new file next to ``near``, else here, else in the temp folder; say where."""
    name = f"selfsup-denoise-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.sdmodel"
    for folder in (near, Path.cwd(), Path(tempfile.gettempdir())):
        try:
            path = model.save(model_output_path(folder / name, inputs))
        except (OSError, ValueError):
            continue
        print(f"selfsup-denoise: the trained model was saved to {path} (use it with: selfsup-denoise denoise -m "
              f"{path} ...)", file=sys.stderr)  # fmt: skip
        return path
    raise OSError("could not save the trained model anywhere (output folder, current folder, temp folder)")


def _suspect(model: Model) -> bool:
    """Whether the model's own self-check failed with no safer output to fall back to."""
    check = model.check
    return check is not None and not check.passed and not check.fallback


def cmd_train(args: argparse.Namespace) -> int:
    """``selfsup-denoise train``: every check of the model file comes before training."""
    out = model_output_path(args.output, _inputs(args), overwrite=args.overwrite)
    model = _train(args)
    if _save(model, out, _inputs(args)) != out:
        return 1
    if _suspect(model) and not args.accept_suspect:
        print("the model failed its self-check (recorded in the file; denoise refuses it unless --accept-suspect)",
              file=sys.stderr)  # fmt: skip
        return EXIT_SUSPECT
    return 0


def _batch_options(args: argparse.Namespace) -> BatchOptions:
    if args.uncertainty:
        raise ConfigError(f"--uncertainty: {UNCERTAINTY_REMOVED}")
    return BatchOptions(
        axes=args.axes,
        tile=args.tile,
        tta=args.tta,
        device=args.device,
        prior=args.prior,
        uncertainty=args.uncertainty,
        overwrite=args.overwrite,
        resume=args.resume,
        fmt=args.fmt,
        dtype=args.dtype,
        scheduler=args.scheduler,
        dask_local=args.dask_local,
        levels=args.levels,
        accept_suspect=args.accept_suspect,
    )


def _denoise(model: Any, args: argparse.Namespace, model_path: str | None) -> int:
    rep = BarReporter(len(args.inputs), args.quiet)
    try:
        results = denoise_files(
            model, args.inputs, args.output, _batch_options(args), model_path=model_path, reporter=rep
        )
    finally:
        rep.close()
    print(summary(results), file=sys.stderr)
    if any(r.status == "failed" for r in results):
        return 1
    return EXIT_SUSPECT if any(r.status == "suspect" for r in results) else 0


def cmd_denoise(args: argparse.Namespace) -> int:
    """``selfsup-denoise denoise``."""
    from ..engine.device import pick_device

    pick_device(args.device)  # a device that is not there is a usage error (exit 2), not a failure per file
    if args.model == BUILTIN:  # zero-shot: a model per input (the prior + that input's noise model)
        return _denoise(zero_shot(args.noise_model), args, None)
    if args.noise_model is not None:
        raise ConfigError("--noise-model applies to --model builtin only (a trained model keeps its own)")
    return _denoise(load_model(args.model), args, args.model)


def cmd_run(args: argparse.Namespace) -> int:
    """``selfsup-denoise run``: check every output, train on the inputs, then denoise them.

    If the outputs cannot be written in the end, the model is kept in a fallback file (printed).
    With ``--resume``, outputs that exist are continued only by the ``--save-model``
    file that made them (no training); otherwise the command stops before training.
    """
    inputs, opts = _inputs(args), _batch_options(args)
    found = check_outputs(args.inputs, args.output, opts)
    saved: Path | None = None
    if args.resume and not args.overwrite and found:
        model, saved = resumed_model(args, found), Path(args.save_model)
    else:
        keep = model_output_path(args.save_model, inputs, overwrite=args.overwrite) if args.save_model else None
        try:
            model = _train(args)
        except KeyboardInterrupt:
            raise KeyboardInterrupt("interrupted while training; nothing was written (run the command again "
                                    "to start over)") from None  # fmt: skip
        saved = _save(model, keep, inputs) if keep is not None else None
    try:
        rc = _denoise(model, args, str(saved) if saved else None)
    except (KeyboardInterrupt, Interrupted) as exc:
        kept = saved or _keep(model, Path(args.output).parent, inputs)
        raise type(exc)(
            f"interrupted; completed chunks are kept. To continue: {continue_command(args, kept)}"
        ) from None
    except BaseException:
        if saved is None:
            _keep(model, Path(args.output).parent, inputs)
        raise
    if rc and saved is None:
        _keep(model, Path(args.output).parent, inputs)
    return rc


def settings_line(cfg: dict[str, Any]) -> str:
    """The per-algorithm training values a model ran with (resolved, as saved in its file)."""
    z = f" x {cfg.get('patch_size_z')} (Z)" if "Z" in (cfg.get("axes") or "") else ""
    return f"batch {cfg.get('batch_size')}, patch {cfg.get('patch_size')}{z}, learning rate {cfg.get('learning_rate')}"


def cmd_info(args: argparse.Namespace) -> int:
    """``selfsup-denoise info``: what a model file holds (``builtin``: the built-in prior)."""
    if args.model == BUILTIN:  # every installed prior (2D, then 3D), one after the other
        for found in builtin_files():
            with found as path:
                cmd_info(argparse.Namespace(**{**vars(args), "model": str(path)}))
        return 0
    meta = read_metadata(args.model)
    if args.json:
        print(json.dumps(meta, indent=2, sort_keys=True))
        return 0
    cfg, summ, norm = meta.get("config", {}), meta.get("summary", {}), meta.get("normalisation", {})
    rows = [
        ("file", args.model),
        ("format", f"{meta['format']} v{meta['format_version']}"),
        ("algorithm", meta.get("algorithm")),
        ("axes", f"{meta.get('axes')} ({meta.get('ndim')}D, {meta.get('channels')} channel(s))"),
        ("network", f"depth {cfg.get('depth')}, base channels {cfg.get('base_channels')}"),
        ("settings", settings_line(cfg)),
        ("normalisation", f"{norm.get('method')} offset {norm.get('offset')} scale {norm.get('scale')}"),
        ("training", f"{summ.get('steps')} steps, {summ.get('seconds')} s, ended by {summ.get('ended_by')}"),
        ("best val loss", summ.get("best_val_loss")),
        ("device", summ.get("device")),
    ]
    skip = ("steps", "seconds", "ended_by", "best_val_loss", "device", "self_check", "start", "prior")
    rows += [*start_rows(summ), *((k, v) for k, v in summ.items() if k not in skip)]
    rows += _check_rows(summ.get("self_check"))
    for k, v in rows:
        print(f"{k:>14}: {v}")
    return 0


def _check_rows(stored: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """``info`` rows of the model's self-check."""
    if not stored:
        return [("self-check", "none (a model saved before self-checks existed)")]
    check = SelfCheck.from_dict(stored)
    where = "held-out pixels" if check.held_out else "training pixels (no held-out split)"
    rows: list[tuple[str, Any]] = [("self-check", f"{check.line()} on {check.pixels} {where}")]
    if not check.passed:
        rows += [("verdict", check.verdict), ("what to try", check.advice)]
    return rows
