"""Training steps per second by thread setting, alone and beside busy processes, in the engine and in the widget.

Issue 10, item 11: OpenMP threads that spin-wait collapse when another process
wants a core. Each case runs in a fresh subprocess (the thread count is fixed
when torch starts); ``--busy K`` starts K processes that spin on one core each
for the duration of the case.

Usage (a quiet machine; the figures are wall-clock)::

    python benchmarks/bench_threads.py                       # engine: 1, 2, auto threads x 0, 1 busy
    xvfb-run -a python benchmarks/bench_threads.py --widget  # the same through the napari train widget

``auto`` leaves SELFSUP_DENOISE_THREADS unset: the engine then uses the cores
this process may run on (``os.sched_getaffinity``), minus one in the widget.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WARMUP = 3

_ENGINE = """
import time, numpy as np
from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine.device import thread_count
from napari_selfsup_denoise.engine.train import train
img = np.random.default_rng(0).normal(100, 10, (256, 256)).astype('f4')
cfg = TrainConfig(axes='YX', max_steps={steps}, max_seconds=None, seed=0)
times = [time.perf_counter() for _ in train(img, cfg)]
print(thread_count(), ({steps} - {warmup}) / (times[-1] - times[{warmup} - 1]))
"""

_WIDGET = """
import time, numpy as np, napari
from qtpy.QtWidgets import QApplication
from napari_selfsup_denoise.engine.device import thread_count
viewer = napari.Viewer(show=True)
_, widget = viewer.window.add_plugin_dock_widget('napari-selfsup-denoise', 'Self-supervised denoise')
viewer.add_image(np.random.default_rng(0).normal(100, 10, (256, 256)).astype('f4'), name='img')
widget.form.set_budget({steps}, 'steps')
widget.form.preview.setChecked(False)
times = []
worker = widget.start_training()
worker.yielded.connect(lambda ev: times.append(time.perf_counter()) if hasattr(ev, 'loss') else None)
app = QApplication.instance()
while not widget.is_idle():
    app.processEvents()
    time.sleep(0.005)
print(thread_count(), ({steps} - {warmup}) / (times[{steps} - 1] - times[{warmup} - 1]))
viewer.close()
"""


def one_case(threads: str, busy: int, widget: bool, steps: int = 40) -> dict[str, object]:
    """Steps per second of one (threads, busy processes) case, in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in ("SELFSUP_DENOISE_THREADS", "OMP_NUM_THREADS")}
    if threads != "auto":
        env["SELFSUP_DENOISE_THREADS"] = threads
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0.0)
        code = (_WIDGET if widget else _ENGINE).format(steps=steps, warmup=WARMUP)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=1200)
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    if out.returncode != 0:
        return {"threads": threads, "busy": busy, "error": out.stderr.strip().splitlines()[-1:]}
    used, rate = out.stdout.split()[-2:]
    return {"threads": threads, "used": int(used), "busy": busy, "steps_per_s": round(float(rate), 2)}


def main() -> None:
    """Run every case and print one JSON line each."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", nargs="+", default=["1", "2", "auto"], help="SELFSUP_DENOISE_THREADS values")
    p.add_argument("--busy", nargs="+", type=int, default=[0, 1], help="numbers of busy processes beside it")
    p.add_argument("--widget", action="store_true", help="train through the napari widget (needs a display)")
    p.add_argument("--steps", type=int, default=40, help="training steps per case (the first 3 are not timed)")
    args = p.parse_args()
    print(f"cores available: {len(os.sched_getaffinity(0))}, {'widget' if args.widget else 'engine'}, N2V 2D")
    for busy in args.busy:
        for threads in args.threads:
            print(json.dumps(one_case(threads, busy, args.widget, args.steps)), flush=True)


if __name__ == "__main__":
    main()
