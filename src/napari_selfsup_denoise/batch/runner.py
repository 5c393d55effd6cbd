"""Denoise inputs one at a time: pick the output, create or resume it, run its units locally or on dask, finish."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..axes import AxesError
from ..config import UNCERTAINTY_REMOVED, ConfigError, PredictConfig, to_dict
from ..engine.checks import Decision, check_record, decide
from ..engine.data import DataError
from ..engine.device import pick_device
from ..engine.model import Model
from ..engine.model_file import ModelFileError
from ..io import Image, InputError, file_identity, read_image
from . import store as _store
from .ahead import CheckAhead, Retracted, can_check_ahead, expected_output
from .local import predict_units
from .outputs import check_outputs, many_inputs, plan_outputs
from .plan import (
    BatchOptions,
    Interrupted,
    Reporter,
    Result,
    check_model_options,
    default_edge,
    expand_inputs,
    model_hash,
    region_px,
    sample_hash,
    unit_grid,
)

__all__ = ["EXPECTED_ERRORS", "FileRunner", "ModelFor", "check_outputs", "denoise_files", "plan_outputs"]

# A model made for each input from its data and axes (or None: guess them); zero-shot denoising is one.
ModelFor = Callable[[Any, str | None], Model]
EXPECTED_ERRORS = (InputError, AxesError, ConfigError, DataError, ModelFileError, _store.OutputError, OSError)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _mark(decision: Decision) -> dict[str, Any]:
    """What the output's metadata records of the self-checks: the output returned, any failure, the figures."""
    suspect = "suspect, written with --accept-suspect"
    return check_record(decision, suspect, "posterior suspect; the prior mean was written")


class FileRunner:
    """Denoise files one by one with a shared model (or one made per input) and (optionally) a dask client.

    Use as a context manager: it starts (and stops) a dask cluster or client
    when ``opts`` asks for one.
    """

    def __init__(
        self,
        model: Model | ModelFor,
        opts: BatchOptions,
        model_path: str | os.PathLike[str] | None,
        reporter: Reporter,
        stop: threading.Event | None,
    ) -> None:
        self.opts, self.rep, self.stop = opts, reporter, stop
        self.model, self.model_for = (model, None) if isinstance(model, Model) else (None, model)
        self.model_path = str(model_path) if model_path else None
        self.client: Any = None
        self._exit: Any = None
        self._tmp: str | None = None
        self._hash = model_hash(self.model) if self.model is not None else ""

    def __enter__(self) -> FileRunner:
        if (self.opts.scheduler or self.opts.dask_local) and self.model is None:
            raise ConfigError("a model made for each image (zero-shot: --model builtin) runs in this process; "
                              "leave out --dask / --scheduler")  # fmt: skip
        if self.opts.scheduler or self.opts.dask_local:
            assert self.model is not None
            from .distributed import dask_client

            if self.model_path is None:
                fd, self._tmp = tempfile.mkstemp(suffix=".sdmodel")
                os.close(fd)
                self.model_path = str(self.model.save(self._tmp))
            self._exit = dask_client(self.opts.scheduler, self.opts.dask_local)
            self.client = self._exit.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._exit is not None:
            self._exit.__exit__(*exc)
        if self._tmp:
            Path(self._tmp).unlink(missing_ok=True)

    def run(self, src: str, output: str, many: bool) -> Result:
        """Denoise one input into ``output`` (a folder when ``many``)."""
        img = read_image(src, self.opts.axes)
        try:
            return self._run(img, output, many)
        finally:
            img.close()

    def _model(self, img: Image) -> Model:
        """The shared model, or the one made for this input (its hash kept for the run record)."""
        if self.model_for is None:
            assert self.model is not None
            return self.model
        model = self.model_for(img.data, img.axes_choice(self.opts.axes).axes)  # the one rule (axes.py)
        self._hash = model_hash(model)
        return model

    def _record(self, img: Image, axes: str, specs: list, pcfg: PredictConfig, dtype: np.dtype, units: list) -> dict:
        """What makes a run: model, options and the input's identity; ``--resume`` continues only the same."""
        parts = {
            "model": self._hash,
            "options": _sha(json.dumps([to_dict(pcfg), str(dtype), axes, specs[0].fmt, len(specs)])),
            "input": str(Path(img.path).resolve()),
            "input_shape": f"{img.shape} {np.dtype(img.data.dtype)}",
            "input_file": file_identity(img.path),
            "input_pixels": sample_hash(img.data, units),
        }
        return {"fingerprint": _sha(json.dumps(parts, sort_keys=True)), "parts": parts, "source": str(img.path)}

    def _run(self, img: Image, output: str, many: bool, settled: Decision | None = None) -> Result:
        m, o = self._model(img), self.opts
        axes = m.resolve_axes(img.shape, img.axes_choice(o.axes, model_axes=m.axes).axes)  # the one rule (axes.py)
        specs = plan_outputs(img, output, many, o)
        asked, check = expected_output(o.prior), None
        fresh = o.overwrite or all(_store.state(s)[0] == "absent" for s in specs)
        if settled is None and can_check_ahead(m, self.client is None, fresh):  # the check runs beside the units
            m.net.to(pick_device(o.device))  # before the check: the units' move must not race its forward pass
            check = CheckAhead(lambda: decide(m, img.data, axes, asked), asked, o.accept_suspect)
        elif settled is None:
            settled = decide(m, img.data, axes, asked)
        if settled is not None and settled.suspect and not o.accept_suspect:
            return self._suspect(img, specs, settled)
        try:
            return self._units(m, img, axes, specs, settled.output if settled else asked, settled, check)
        except Retracted:
            pass
        except Interrupted:
            if check is not None and not check.stands():  # the check would have refused: nothing is kept
                _store.remove_each(specs)
            raise
        except BaseException:
            if check is not None:
                check.stands()  # waits: no check goes on after this file
            raise
        _store.remove_each(specs)
        decision = check.decision() if check is not None else settled  # raises the check's error
        assert decision is not None
        return self._run(img, output, many, decision)  # refused as suspect, or the run of another output

    def _suspect(self, img: Image, specs: list, decision: Decision) -> Result:
        why = " ".join(decision.notes()) + " Nothing was written; pass --accept-suspect to write it anyway."
        return Result(img.path, str(specs[0].dst), "suspect", why)

    def _units(
        self, m: Model, img: Image, axes: str, specs: list, out: str, settled: Decision | None, check: Any
    ) -> Result:
        """Create or resume the outputs, run the units, finish; the self-check is ``settled`` or ``check``."""
        o = self.opts
        edge = o.tile or default_edge(m, o.device)
        edge = max(m.multiple, edge - edge % m.multiple)
        chunks, units = unit_grid(img.shape, axes, edge, m.ndim)
        pcfg = PredictConfig(tile=edge, tta=o.tta, device=o.device, output=out, uncertainty=o.uncertainty)
        dtype = np.dtype(img.data.dtype) if o.dtype == "input" else np.dtype(np.float32)
        record = {**self._record(img, axes, specs, pcfg, dtype, units), "self_check": settled and _mark(settled)}
        arrs = [
            _store.prepare(s, img.shape, chunks, dtype if i == 0 else np.dtype(np.float32), record,
                           overwrite=o.overwrite, resume=o.resume)
            for i, s in enumerate(specs)
        ]  # fmt: skip
        dst = str(specs[0].dst)
        if arrs[0] is None:
            return Result(img.path, dst, "skipped", "output already complete")
        done = _store.done_keys(specs[0])
        pending = [u for u in units if u[0] not in done]
        total, todo = (sum(region_px(r, axes) for _, r in us) for us in (units, pending))
        self.rep.file_start(img.path, total, total - todo)
        try:
            if self.client is not None:
                self._run_dask(img, axes, pcfg, specs, dtype, pending)
            else:
                self._run_local(m, img, axes, pcfg, specs, arrs, units, done, check)
        except (Interrupted, Retracted):
            raise
        except Exception as exc:
            if check is not None and not check.stands():
                raise Retracted("the self-check refuses this run") from exc
            raise _store.abandon(specs, exc, len(units)) from exc
        if check is not None and not check.stands():
            raise Retracted("the self-check refuses this run")
        decision = settled or check.decision()
        for s, a in zip(specs, arrs):
            _store.finish(s, a, img, axes, o.levels, {"self_check": _mark(decision)})
        return Result(img.path, dst, "done", megapixels=round(todo / 1e6, 3), notes=decision.notes())

    def _on_unit(self, mark: Callable[[str], None] | None, key: str, px: int, check: Any = None) -> None:
        if mark is not None:
            mark(key)
        if check is not None:
            check.interrupt_if_refused()
        self.rep.file_advance(px)
        if self.stop is not None and self.stop.is_set():
            raise Interrupted("stopped; run again with --resume to continue")

    def _run_local(
        self,
        m: Model,
        img: Image,
        axes: str,
        pcfg: PredictConfig,
        specs: list,
        arrs: list,
        units: list,
        done: set,
        check: Any = None,
    ) -> None:
        outs = [_store.CastArray(arrs[0]), *arrs[1:]]
        with _store.DoneLog(specs[0].done_dir) as log:
            on_unit = lambda k, px: self._on_unit(log.mark, k, px, check)  # noqa: E731
            predict_units(m, img.data, axes, pcfg, outs, units, on_unit, done)

    def _run_dask(
        self, img: Image, axes: str, pcfg: PredictConfig, specs: list, dtype: np.dtype, pending: list
    ) -> None:
        from .distributed import run_units

        spec = {
            "model": self.model_path,
            "src": img.path,
            "axes": axes,
            "pcfg": to_dict(pcfg),
            "outs": [[str(s.work), s.inner] for s in specs],
            "done": str(specs[0].done_dir),
        }
        run_units(self.client, json.dumps(spec), pending, lambda k, px: self._on_unit(None, k, px))


def denoise_files(
    model: Model | ModelFor,
    inputs: list[str],
    output: str,
    opts: BatchOptions,
    *,
    model_path: str | os.PathLike[str] | None = None,
    reporter: Reporter | None = None,
    stop: threading.Event | None = None,
) -> list[Result]:
    """Denoise every input (files, directories, globs) into ``output``; never raises for one bad file.

    ``model`` is a trained model, or a function making one per input from its data and axes
    (zero-shot denoising: :func:`napari_selfsup_denoise.prior.zero_shot_model`; local runs only).

    Returns
    -------
    list of Result
        One per input, in order; status ``done``, ``skipped`` or ``failed``.
    """
    if opts.uncertainty:  # removed everywhere until calibrated (config.UNCERTAINTY_REMOVED)
        raise ConfigError(f"uncertainty=True: {UNCERTAINTY_REMOVED}")
    if isinstance(model, Model):
        check_model_options(model, opts)
    rep = reporter or Reporter()
    paths, results = expand_inputs(inputs)
    for r in results:
        rep.file_end(r)
    many = many_inputs(inputs, paths)
    with FileRunner(model, opts, model_path, rep, stop) as runner:
        for src in paths:
            t0 = time.perf_counter()
            try:
                res = runner.run(src, output, many)
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
