"""How responsive napari stays while the train widget works: event-loop gaps, Stop latency, closing.

Opens a real viewer (run it under Xvfb on a headless machine), loads an image,
opens the dock, waits ``--idle`` seconds (a person reading the form; the dock
imports the engine in the background meanwhile), presses Train and measures,
with a 10 ms QTimer:

- ``open_s``: how long opening the dock blocked the main thread (Qt widgets, torch's import);
- ``gap_idle_s``: the longest event-loop gap between the dock opening and Train
  (the background imports of ``_widgets/_warm.py`` run then); ``train_enabled_s``: when
  Train was pressed, ``--idle`` seconds after the dock opened or, if later, as soon as it
  was enabled (it waits for those imports);
- the longest event-loop gap from Train to the result layer (target < 0.1 s),
  split into ``gap_training_s`` (Train -> first denoising event) and
  ``gap_result_s`` (from then until the ``<name> denoised`` layer is shown and selected in the
  viewer - the preview layer renamed, or a new layer when there was no preview - and 0.3 s
  more, so that its last turns and first draw count);
  a figure that cannot be measured is NaN and ``nan_because`` says why;
- ``gap_training_cpu_s``, ``gap_result_cpu_s``: the most CPU time the main thread spent between
  two ticks in the same spans (what blocked it itself, not waiting for the interpreter lock or a core);
- ``--stop-after S``: ``stop_latency_s``, the time from pressing Stop (S seconds after
  the first step) until the first denoised tile reaches the main thread (target < 1 s), split into
  ``stop_to_ended_s`` (until training says it has ended: the step in progress, which the engine
  ends inside its forward or backward pass), ``stop_to_model_s`` (also the end-of-training
  self-check and, when there is a choice to make, the final validation - 3D blind-spot: a
  second self-check instead, :mod:`engine._check_pick` - training has returned its model),
  ``image_check_s`` (the self-check of the model on the image,
  :func:`engine.checks.decide`) and ``first_window_s`` (the first denoise window's forward pass);
- ``end_of_training_s``: from the last training step's event to the returned model
  (the final validation and the self-check), with or without Stop;
- ``--close-during-denoise``: how long ``viewer.close()`` blocks when it is called
  while the result is being denoised (``close_s``), and until the worker has
  ended (``quit_wait_s``: what quitting napari waits for, the forward pass in
  progress).

``--why`` prints the main thread's stack during every gap longer than 50 ms
(a watchdog thread samples it), the wall and CPU time of the widget's handlers,
and the longest gaps with the phase they fell in, to find what blocks the event loop.

Usage (quiet machine; the figures are wall-clock)::

    xvfb-run -a python benchmarks/bench_ui.py --image 2d --seconds 20 --why
    xvfb-run -a python benchmarks/bench_ui.py --image 3d --seconds 60 --stop-after 5
    xvfb-run -a python benchmarks/bench_ui.py --image 3d --seconds 5 --close-during-denoise
    xvfb-run -a python benchmarks/bench_ui.py --image ../shared/data/telomeres_timelapse_spotiflow.tif --seconds 20
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ui_watch import Watch  # noqa: E402


def load(viewer: Any, image: str) -> Any:
    """Add the sample (``2d``, ``3d``) or a file to the viewer; return its layer."""
    from napari_selfsup_denoise import _sample_data

    if image in ("2d", "3d"):
        data, kw, _ = (_sample_data.noisy_nuclei_2d if image == "2d" else _sample_data.noisy_nuclei_3d)()[0]
        return viewer.add_image(data, **kw)
    return viewer.open(image, plugin="napari")[0]


MISSING = {
    "denoising": "no denoising event reached the main thread (the run failed, or was stopped before denoising)",
    "result": "no layer named '{result}' appeared (the run failed or its result was discarded: see 'status')",
    "trained": "training returned no model to check (the run failed, or denoising was off)",
    "checked": "the self-check of the model on the image did not end (the run failed: see 'status')",
    "ended": "training never said it had ended (an engine without TrainProgress.phase, or the run failed)",
}


def _nan_because(watch: Watch, result: str, figures: dict[str, Any]) -> dict[str, str]:
    """For each figure that is NaN, the first of its marks that never happened and what that means."""
    need = {"gap_training_s": ("denoising",), "gap_result_s": ("denoising", "result")}
    need |= {"train_to_result_s": ("result",), "stop_latency_s": ("denoising",), "stop_to_model_s": ("trained",)}
    need |= {"end_of_training_s": ("trained",), "image_check_s": ("checked",), "first_window_s": ("denoising",)}
    need |= {"stop_to_ended_s": ("ended",)}
    out = {}
    for key, value in figures.items():
        missing = [m for m in need.get(key, ()) if m not in watch.marks]
        if value != value and missing:  # NaN != NaN
            out[key] = MISSING[missing[0]].format(result=result)
    return out


def _idle(app: Any, seconds: float) -> None:
    """Serve the event loop for ``seconds``, as napari would while a person reads the form."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.002)


SETTLE_S = 0.3


def _shown(viewer: Any, name: str) -> bool:
    """Whether the layer ``name`` is in the viewer and shown (a new result layer is inserted hidden, then shown)."""
    return name in viewer.layers and bool(viewer.layers[name].visible)


def _drive(app: Any, viewer: Any, widget: Any, watch: Watch, args: argparse.Namespace, result: str) -> dict[str, Any]:
    """Press Train and serve the event loop until the worker has finished (or the viewer was closed)."""
    from napari_selfsup_denoise.engine.events import PredictProgress, TrainProgress

    def _on_event(ev: Any) -> None:
        if isinstance(ev, TrainProgress) and getattr(ev, "phase", "training") != "training":
            watch.mark("ended")  # training has ended: the final validation and the self-check run now
        elif isinstance(ev, TrainProgress):
            watch.mark("first step")
            watch.marks["last step"] = time.perf_counter()
        elif isinstance(ev, PredictProgress):
            watch.mark("denoising")

    watch.mark("train")
    worker = widget.start_training()
    worker.yielded.connect(_on_event)
    worker.finished.connect(lambda: watch.mark("finished"))
    deadline = time.perf_counter() + args.seconds * 4 + 600
    while "finished" not in watch.marks and time.perf_counter() < deadline:
        app.processEvents()
        if _shown(viewer, result):  # polled after the handlers return; the preview is renamed, not inserted
            watch.mark("result")
        time.sleep(0.002)
        started = watch.marks.get("first step", math.inf)
        due = args.stop_after is not None and time.perf_counter() > started + args.stop_after
        if due and "stop" not in watch.marks:
            watch.mark("stop")
            widget.stop_btn.click()
        if args.close_during_denoise and "denoising" in watch.marks:
            from qtpy.QtCore import QThreadPool

            t = time.perf_counter()
            viewer.close()
            closed = {"close_s": round(time.perf_counter() - t, 3)}
            QThreadPool.globalInstance().waitForDone()  # what quitting napari waits for (its aboutToQuit)
            return closed | {"quit_wait_s": round(time.perf_counter() - t, 3)}
    shown_by = time.perf_counter() + 5.0  # a new result layer is shown a few event-loop turns after it is added
    while not widget.is_idle() and time.perf_counter() < shown_by:  # is_idle: the result layer is in place
        app.processEvents()
        time.sleep(0.002)
    if _shown(viewer, result):
        watch.mark("result")
        _idle(app, SETTLE_S)  # the result's last turns (its selection, its first draw) count in gap_result_s
        watch.mark("settled")
    return {}


def _mark_checks(watch: Watch) -> None:
    """Mark when training has returned its model and the image check starts ("trained"), and when it ends."""
    from napari_selfsup_denoise.engine import checks

    real = checks.decide  # the worker imports it from the module when training has returned

    def _decide(*args: Any, **kwargs: Any) -> Any:
        watch.mark("trained")
        try:
            return real(*args, **kwargs)
        finally:
            watch.mark("checked")

    checks.decide = _decide


def _span(watch: Watch, start: str, end: str) -> float:
    lo, hi = watch.marks.get(start, float("nan")), watch.marks.get(end, float("nan"))
    return round(hi - lo, 3)


def _figures(watch: Watch, result: str, why: bool) -> dict[str, Any]:
    """The gaps and latencies from the marks (NaN where a mark is missing, with the reason)."""
    out: dict[str, Any] = {
        "gap_idle_s": round(watch.max_gap("open", "train"), 3),
        "gap_training_s": round(watch.max_gap("train", "denoising"), 3),
        "gap_result_s": round(watch.max_gap("denoising", "settled"), 3),
        "gap_training_cpu_s": round(watch.max_gap_cpu("train", "denoising"), 3),
        "gap_result_cpu_s": round(watch.max_gap_cpu("denoising", "settled"), 3),
        "train_to_result_s": round(watch.marks.get("result", float("nan")) - watch.marks["train"], 2),
    }
    out["end_of_training_s"] = _span(watch, "last step", "trained")
    if "stop" in watch.marks:
        out["stop_latency_s"] = _span(watch, "stop", "denoising")
        out["stop_to_ended_s"] = _span(watch, "stop", "ended")
        out["stop_to_model_s"] = _span(watch, "stop", "trained")
        out["image_check_s"] = _span(watch, "trained", "checked")
        out["first_window_s"] = _span(watch, "checked", "denoising")
    out["nan_because"] = _nan_because(watch, result, out)
    if why:
        out["handlers"] = watch.handler_report()
        out["longest_gaps"] = watch.gaps()
        out["marks_s"] = {k: round(v - watch.marks["train"], 2) for k, v in watch.marks.items()}
        out["gaps_by_stack"] = [f"{n * 10} ms  {s}" for s, n in watch.stacks.most_common(12)]
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One scenario; returns the figures."""
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    layer = load(viewer, args.image)
    app = QApplication.instance()
    watch = Watch(args.why)
    t = time.perf_counter()
    _, widget = viewer.window.add_plugin_dock_widget("napari-selfsup-denoise", "Self-supervised denoise")
    out: dict[str, Any] = {"image": args.image, "shape": list(layer.data.shape), "axes": widget.form.axes.text()}
    out["open_s"] = round(time.perf_counter() - t, 3)  # building the dock blocks the main thread
    watch.mark("open")
    if args.algorithm:
        widget.form.set_algorithm(args.algorithm)
    widget.form.set_budget(args.seconds, "seconds")
    widget.form.preview.setChecked(not args.no_preview)
    _idle(app, args.idle)
    while not widget.train_btn.isEnabled():  # "Train (loading…)" until the background imports have ended
        _idle(app, 0.01)
    out["train_enabled_s"] = round(time.perf_counter() - watch.marks["open"], 2)
    if args.why:
        for name in ("start_training", "_on_progress", "_on_result", "_on_finished", "_remove_preview"):
            watch.timed(widget, name)
    result = f"{layer.name} denoised"
    _mark_checks(watch)
    closed = _drive(app, viewer, widget, watch, args, result)
    watch.stop()
    if closed:
        return out | closed
    out |= _figures(watch, result, args.why) | {"status": widget.status.text()}
    viewer.close()
    return out


def main() -> None:
    """Parse the options, run one scenario, print JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--image", default="3d", help="2d, 3d (the napari samples) or a file path")
    p.add_argument("--algorithm", default=None, help="e.g. n2v, blindspot (default: the widget's)")
    p.add_argument("--seconds", type=float, default=20.0, help="training budget")
    p.add_argument("--no-preview", action="store_true", help="untick the live preview")
    p.add_argument("--stop-after", type=float, default=None, help="press Stop this many seconds after step 1")
    p.add_argument("--close-during-denoise", action="store_true", help="close the viewer while denoising")
    p.add_argument("--why", action="store_true", help="sample the main thread's stack during long gaps")
    p.add_argument("--idle", type=float, default=3.0, help="seconds between opening the dock and Train")
    print(json.dumps(run(p.parse_args()), indent=1))


if __name__ == "__main__":
    main()
