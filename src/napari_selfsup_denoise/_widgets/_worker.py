"""Run the engine's generators in napari workers; plain messages for the errors people meet.

Nothing here touches a layer: the generators get arrays copied on the main
thread and return arrays and models that the main thread turns into layers.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from ..config import PredictConfig, TrainConfig
from ._collector import hold_while
from ._passes import short_passes

_log = logging.getLogger(__name__)


class WorkerError(ValueError):
    """A failure in the worker explained in plain words."""


def guarded(func: Callable[..., Generator[Any, None, Any]], *args: Any, **kwargs: Any) -> Generator[Any, None, Any]:
    """Run generator ``func(*args, **kwargs)``; turn out-of-memory errors into a plain message."""
    try:
        return (yield from func(*args, **kwargs))
    except (RuntimeError, MemoryError) as exc:
        from ..engine.device import is_oom

        if is_oom(exc):
            raise WorkerError(
                "out of memory: lower the batch size or patch size (Advanced), or pick a smaller tile"
            ) from exc
        raise


@dataclass
class Stops:
    """One event per phase, so Stop ends training but the denoising of the result still runs."""

    train: threading.Event = field(default_factory=threading.Event)
    predict: threading.Event = field(default_factory=threading.Event)

    def set_all(self) -> None:
        """Stop every phase (teardown)."""
        self.train.set()
        self.predict.set()

    def clear(self) -> None:
        """Ready for a new run."""
        self.train.clear()
        self.predict.clear()


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    """Everything one training run needs, prepared on the main thread."""

    data: Any
    config: TrainConfig
    target: Any = None
    init: Any = None
    start: Any = None
    preview: Any = None
    denoise: bool = True
    uncertainty: bool = False
    out: Any = None
    uncertainty_out: Any = None
    choice: str = ""  # what "Automatic" picked and why (the config is resolved, so the engine cannot tell)
    route: TrainConfig | None = None  # "auto": the config to route in the worker before training
    decide: Callable[[TrainJob], TrainJob] | None = None  # does that (_job.routed), first thing in the worker
    routing: Any = None  # the engine.route.Route decide made (train() reuses its noise measurement)


@dataclass(frozen=True)
class Phase:
    """A stage of a widget's worker with no progress event of its own, yielded as it starts.

    Attributes
    ----------
    name : str
        ``"image-check"``: the self-check of the model on the image, before denoising;
        ``"denoising"``: prediction has started (its first tile is being computed).
    """

    name: str


@dataclass(frozen=True)
class Prediction:
    """A denoised image and what showing it needs, all computed in the worker.

    ``limits`` are the contrast limits of ``out``: computed here, so adding the
    layer does not read its pixels on the main thread. ``decision`` holds the
    self-checks (:class:`~..engine.checks.Decision`).
    """

    out: Any
    unc: Any = None
    decision: Any = None
    limits: tuple[float, float] | None = None


@dataclass(frozen=True)
class TrainResult:
    """What a training run returns to the main thread (``check``: the self-checks of the denoised output)."""

    model: Any
    denoised: Any = None
    uncertainty: Any = None
    check: Any = None
    limits: tuple[float, float] | None = None
    config: TrainConfig | None = None  # the config that ran ("auto" decided in the worker)


def checked_predict(
    model: Any,
    data: Any,
    pcfg: PredictConfig,
    axes: str | None,
    *,
    stop: threading.Event | None = None,
    **kwargs: Any,
) -> Generator[Any, None, Prediction | None]:
    """Self-check ``model`` on ``data`` (the safer output when the posterior is suspect), predict, take limits.

    Prediction runs in the passes of :func:`._passes.short_passes`, and ``stop`` ends it inside
    a forward pass (:mod:`..engine._abort`); returns None when ``stop`` was set. Yields a :class:`Phase`
    as the check and the prediction start, then the engine's ``PredictProgress``.
    """
    from ..engine._abort import Stopped, stop_inside  # torch: the docks open without it (_warm.py)
    from ..engine.checks import decide
    from ..engine.predict import predict
    from ._layers import mark_output, robust_limits

    stop = stop if stop is not None else threading.Event()
    with stop_inside(model.net, stop.is_set):
        try:
            yield Phase("image-check")
            decision = decide(model, data, axes, pcfg.output)
            pcfg = short_passes(model, data, axes, dataclasses.replace(pcfg, output=decision.output))
            yield Phase("denoising")
            res = yield from predict(model, data, pcfg, axes=axes, stop=stop, **kwargs)
        except Stopped:
            return None
    if stop.is_set():
        return None
    out, unc = res if isinstance(res, tuple) else (res, None)
    mark_output(out, decision)  # a Zarr output keeps the self-checks in its attrs, as the command line's do
    return Prediction(out, unc, decision, robust_limits(out))


def train_then_denoise(job: TrainJob, stops: Stops) -> Generator[Any, None, TrainResult]:
    """Train (yielding TrainProgress), then denoise the training data (yielding PredictProgress)."""
    from ..engine.train import train

    if job.decide is not None:  # "auto": the noise is measured here, not on the main thread
        job = job.decide(job)
    model = yield from train(
        job.data, job.config, stop=stops.train, target=job.target, preview=job.preview, init=job.init,
        start=job.start, routed=job.routing,
    )  # fmt: skip
    if job.choice:
        model.summary["algorithm_choice"] = job.choice
    if not job.denoise or stops.predict.is_set():
        return TrainResult(model, config=job.config)
    pcfg = PredictConfig(device=job.config.device, precision=job.config.precision, uncertainty=job.uncertainty)
    res = yield from checked_predict(
        model, job.data, pcfg, model.axes, stop=stops.predict, out=job.out, uncertainty_out=job.uncertainty_out
    )
    if res is None:  # stopped (Stop while denoising, the layer removed, or the dock closed)
        return TrainResult(model, config=job.config)
    return TrainResult(model, res.out, res.unc, check=res.decision, limits=res.limits, config=job.config)


def report(exc: BaseException) -> str:
    """Show a worker's exception as an error notification; expected failures get their plain message."""
    if isinstance(exc, ValueError | MemoryError):
        message = str(exc)
    else:
        _log.error("worker failed", exc_info=(type(exc), exc, exc.__traceback__))
        message = f"unexpected error ({type(exc).__name__}): {exc}"
    notify(message, error=True)
    return message


def start_worker(func: Callable[..., Any], *args: Any, handlers: dict[str, Callable[..., Any]], **kwargs: Any) -> Any:
    """Start ``guarded(func, *args, **kwargs)`` in a napari worker with ``handlers`` connected by signal name.

    An exception in the worker becomes an error notification (see :func:`report`)
    before the ``errored`` handler runs; the worker class is superqt's plain one so
    that the notification is shown exactly once whatever napari's own relay does.
    While it runs, full garbage collections skip the objects that existed before (:mod:`._collector`).
    """
    from napari.qt.threading import create_worker
    from superqt.utils import GeneratorWorker

    from ..engine.device import reserve_ui_thread

    reserve_ui_thread()  # Qt's event loop shares the cores: spinning OpenMP threads would starve it
    on_error = handlers.get("errored")

    def _on_errored(exc: BaseException) -> None:
        report(exc)
        if on_error is not None:
            on_error(exc)

    worker = create_worker(
        guarded,
        func,
        *args,
        _start_thread=False,
        _worker_class=GeneratorWorker,
        _connect={**handlers, "errored": _on_errored},
        **kwargs,
    )
    hold_while(worker)
    worker.start()
    return worker


def notify(message: str, error: bool = False, warning: bool = False) -> None:
    """Show a napari notification (an error, a warning or an info)."""
    from napari.utils.notifications import show_error, show_info, show_warning

    (show_error if error else show_warning if warning else show_info)(message)


def check_status(model: Any, decision: Any) -> str:
    """The status-line text of the self-checks; each failure is also shown as a warning notification.

    It shows the check from training, and the check on this image when that failed, or, for a model
    without a training check (zero-shot, or an older model file), whatever the image check said.
    """
    check = decision.trained if decision is not None else model.check
    zero_shot = (getattr(model, "summary", None) or {}).get("ended_by") == "zero-shot"  # nothing was trained
    parts = [check.line()] if check is not None else []
    if check is None and not zero_shot:
        parts.append("no training self-check (an older model file)")
    if decision is not None:
        image = decision.image
        if image.stage == "image" and (check is None or (image.figures and not image.passed)):
            parts.append(image.line() if image.figures else f"self-check: {image.verdict}")
        if decision.fell_back:
            parts.append("the prior mean was returned (the posterior is suspect)")
        for msg in decision.messages():
            notify(msg, warning=True)
    elif check is not None and not check.passed:
        notify(f"self-check: {check.verdict}. What to try: {check.advice}.", warning=True)
    return " · ".join(parts)
