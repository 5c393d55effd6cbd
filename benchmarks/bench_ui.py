"""How responsive napari stays while the train widget works: event-loop gaps, Stop latency, closing.

Opens a real viewer (run it under Xvfb on a headless machine), loads an image,
opens the dock, waits ``--idle`` seconds (a person reading the form; the dock
imports the engine in the background meanwhile), presses Train and measures,
with a 10 ms QTimer:

- ``open_s``: how long opening the dock blocked the main thread (Qt widgets, torch's import);
- ``gap_idle_s``: the longest event-loop gap between the dock opening and Train
  (the background imports of ``_widgets/_warm.py`` run then);
- the longest event-loop gap from Train to the result layer (target < 0.1 s),
  split into ``gap_training_s`` (Train -> first denoising event) and
  ``gap_result_s`` (from then until the ``<name> denoised`` layer is in the
  viewer: the preview layer renamed, or a new layer when there was no preview);
  a figure that cannot be measured is NaN and ``nan_because`` says why;
- ``--stop-after S``: the time from pressing Stop (S seconds after the first step)
  until training has ended (target < 1 s; bounded below by one training step or
  one preview, which the engine does not interrupt);
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
import threading
import time
import traceback
from collections import Counter
from typing import Any

GAP_S = 0.05


def _where(frame: Any) -> str:
    """The innermost lines of a stack: three of this package (or the outermost caller) and the innermost."""
    if frame is None:
        return "?"
    stack = list(traceback.walk_stack(frame))
    lines = [f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{n} {f.f_code.co_name}" for f, n in stack]
    ours = [ln for ln, (f, _) in zip(lines, stack) if "napari_selfsup" in f.f_code.co_filename]
    return " < ".join(dict.fromkeys(lines[:2] + ours[:3]))


class Watch:
    """Event-loop ticks on the main thread, and (optionally) what the main thread did during long gaps."""

    def __init__(self, why: bool) -> None:
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self.marks: dict[str, float] = {}
        self.stacks: Counter[str] = Counter()
        self.calls: dict[str, list[tuple[float, float]]] = {}
        self._main = threading.main_thread().ident
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self._timer.start()
        self._done = threading.Event()
        self._me: int | None = None
        if why:
            thread = threading.Thread(target=self._sample, daemon=True)
            thread.start()
            self._me = thread.ident

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            last = self.ticks[-1] if self.ticks else None
            if last is not None and time.perf_counter() - last > GAP_S:
                frames = sys._current_frames()  # noqa: SLF001 (a profiler's job)
                where = [f"main: {_where(frames.get(self._main))}"]
                where += [f"worker: {_where(f)}" for i, f in frames.items() if i not in (self._main, self._me)]
                self.stacks[" | ".join(where)] += 1

    def timed(self, obj: Any, name: str) -> None:
        """Replace the method ``obj.name`` by a wrapper that records its wall and CPU time per call."""
        func = getattr(obj, name)
        calls = self.calls.setdefault(name, [])

        def _wrapper(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                calls.append((time.perf_counter() - t, time.thread_time() - c))

        setattr(obj, name, _wrapper)

    def handler_report(self) -> dict[str, str]:
        """Per wrapped handler: calls, longest wall time, its CPU time."""
        out = {}
        for name, calls in self.calls.items():
            if calls:
                wall, cpu = max(calls)
                out[name] = f"{len(calls)} calls, longest {wall * 1000:.0f} ms wall ({cpu * 1000:.0f} ms CPU)"
        return out

    def gaps(self, n: int = 8) -> list[str]:
        """The ``n`` longest gaps after the dock opened: when (seconds after Train), how long, in which phase."""
        t0, start = self.marks["train"], self.marks.get("open", self.marks["train"])
        order = sorted(self.marks.items(), key=lambda kv: kv[1])
        found = []
        for a, b in zip(self.ticks, self.ticks[1:]):
            if b - a > GAP_S and a >= start:
                phase = [k for k, v in order if v <= a][-1]
                found.append((b - a, a - t0, phase))
        return [f"{g * 1000:.0f} ms at {t:.2f} s (after '{ph}')" for g, t, ph in sorted(found, reverse=True)[:n]]

    def mark(self, name: str) -> None:
        """Remember when ``name`` happened (first time only)."""
        self.marks.setdefault(name, time.perf_counter())

    def max_gap(self, start: str, end: str) -> float:
        """The longest interval between ticks (including the edges) between two marks."""
        lo, hi = self.marks.get(start), self.marks.get(end)
        if lo is None or hi is None:
            return float("nan")
        inside = [lo] + [t for t in self.ticks if lo < t < hi] + [hi]
        return max(b - a for a, b in zip(inside, inside[1:]))

    def stop(self) -> None:
        """Stop sampling."""
        self._done.set()
        self._timer.stop()


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
}


def _nan_because(watch: Watch, result: str, figures: dict[str, Any]) -> dict[str, str]:
    """For each figure that is NaN, the first of its marks that never happened and what that means."""
    need = {"gap_training_s": ("denoising",), "gap_result_s": ("denoising", "result")}
    need |= {"train_to_result_s": ("result",), "stop_latency_s": ("denoising",)}
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


def _drive(app: Any, viewer: Any, widget: Any, watch: Watch, args: argparse.Namespace, result: str) -> dict[str, Any]:
    """Press Train and serve the event loop until the worker has finished (or the viewer was closed)."""
    from napari_selfsup_denoise.engine.events import PredictProgress, TrainProgress

    def _on_event(ev: Any) -> None:
        if isinstance(ev, TrainProgress):
            watch.mark("first step")
        elif isinstance(ev, PredictProgress):
            watch.mark("denoising")

    watch.mark("train")
    worker = widget.start_training()
    worker.yielded.connect(_on_event)
    worker.finished.connect(lambda: watch.mark("finished"))
    deadline = time.perf_counter() + args.seconds * 4 + 600
    while "finished" not in watch.marks and time.perf_counter() < deadline:
        app.processEvents()
        if result in viewer.layers:  # polled after the handlers return; the preview is renamed, not inserted
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
    if result in viewer.layers:
        watch.mark("result")
    return {}


def _figures(watch: Watch, result: str, why: bool) -> dict[str, Any]:
    """The gaps and latencies from the marks (NaN where a mark is missing, with the reason)."""
    out: dict[str, Any] = {
        "gap_idle_s": round(watch.max_gap("open", "train"), 3),
        "gap_training_s": round(watch.max_gap("train", "denoising"), 3),
        "gap_result_s": round(watch.max_gap("denoising", "result"), 3),
        "train_to_result_s": round(watch.marks.get("result", float("nan")) - watch.marks["train"], 2),
    }
    if "stop" in watch.marks:
        out["stop_latency_s"] = round(watch.marks.get("denoising", float("nan")) - watch.marks["stop"], 3)
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
    if args.why:
        for name in ("start_training", "_on_progress", "_on_result", "_on_finished", "_remove_preview"):
            watch.timed(widget, name)
    result = f"{layer.name} denoised"
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
