"""The docks import the engine in the background when they open, so the worker imports nothing after Train.

Imports done in the worker hold the interpreter lock and stall napari's event
loop (issue 10, item 13; ``benchmarks/bench_ui.py --why``). How long the gaps are
is a timing question for that benchmark; these tests check the behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# A fresh interpreter (nothing imported yet): the widget modules a dock has imported, then the warm-up, then a
# first run of each worker function the docks start (training with a preview + denoising, for N2V and for
# blind-spot from the built-in prior; zero-shot denoising). Prints the modules the runs imported.
FIRST_RUN = """
import json, sys
import numpy as np
from napari_selfsup_denoise._widgets import _layers, _preview, _worker
from napari_selfsup_denoise._widgets._warm import import_engine
from napari_selfsup_denoise.config import PredictConfig, TrainConfig
from napari_selfsup_denoise.engine.events import drain

import_engine()
before = set(sys.modules)
from napari_selfsup_denoise.prior import resolve_start, zero_shot_model

img = np.random.default_rng(0).normal(100, 10, (64, 64)).astype("f4")
for algorithm in ("n2v", "blindspot"):
    cfg = TrainConfig(algorithm=algorithm, axes="YX", max_steps=2, max_seconds=None, batch_size=2,
                      patch_size=32, preview_every_s=1e-6, val_fraction=0.0, device="cpu")
    job = _worker.TrainJob(data=img, config=cfg, start=resolve_start(cfg, img.shape), preview=img)
    res = drain(_worker.train_then_denoise(job, _worker.Stops()))
    assert res.denoised.shape == img.shape
model = zero_shot_model(img, "YX")
drain(_worker.checked_predict(model, img, PredictConfig(), "YX"))
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_a_first_run_after_the_warm_up_imports_nothing():
    run = subprocess.run([sys.executable, "-c", FIRST_RUN], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    imported = json.loads(run.stdout.strip().splitlines()[-1])
    imported = [m for m in imported if m.split(".")[0] not in sys.stdlib_module_names]  # small ones left out
    assert imported == [], f"imported by the first run, not by _widgets/_warm.py: {imported}"


def test_opening_a_dock_starts_the_warm_up(open_widget, monkeypatch):
    from napari_selfsup_denoise._widgets import _warm

    started: list[bool] = []
    monkeypatch.setattr(_warm, "_thread", None)
    monkeypatch.setattr(_warm, "import_engine", lambda: started.append(True))
    viewer, _, _ = open_widget()
    _warm._thread.join(timeout=60)
    assert started == [True]
    monkeypatch.setattr(_warm, "_thread", None)
    viewer.window.add_plugin_dock_widget("napari-selfsup-denoise", "Denoise with a model")
    _warm._thread.join(timeout=60)
    assert started == [True, True]


# A fresh interpreter on the test display: both docks opened while the background imports are held back. The
# main thread must not import torch to open them (it blocked napari for over a second, issue 10 item 13), nor
# can Train or Denoise now be pressed (they would import it); once the imports run, the device line and the
# "start from" line are filled in and the buttons enabled.
OPEN_DOCKS = """
import json, sys, threading, time
import napari
from qtpy.QtWidgets import QApplication
from napari_selfsup_denoise._widgets import _warm

gate, run = threading.Event(), _warm._run
_warm._run = lambda: (gate.wait(120), run())
viewer = napari.Viewer(show=False)
app = QApplication.instance()
_, train = viewer.window.add_plugin_dock_widget("napari-selfsup-denoise", "Self-supervised denoise")
viewer.window.add_plugin_dock_widget("napari-selfsup-denoise", "Denoise with a model")
for _ in range(10):
    app.processEvents()
    time.sleep(0.02)
buttons = lambda: [train.train_btn.isEnabled(), train.denoise_now.button.isEnabled(), train.train_btn.text()]
seen = {"torch": "torch" in sys.modules, "line": train.device_label.text(), "buttons": buttons()}
gate.set()
end = time.time() + 120
while train.device_label.text() == seen["line"] and time.time() < end:
    app.processEvents()
    time.sleep(0.02)
seen |= {"filled": train.device_label.text(), "start": train.form.start_from.resolved.text()}
_warm._thread.join(120)  # not exiting while the thread is inside an import
while not train.train_btn.isEnabled() and time.time() < end:  # enabled once the whole warm-up has ended
    app.processEvents()
    time.sleep(0.02)
seen["buttons_then"] = buttons()
viewer.close()
print(json.dumps(seen))
"""


def test_opening_the_docks_leaves_torch_to_the_background_thread():
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        pytest.skip("no X display: `make xvfb` installs Xvfb, which pytest-xvfb then starts")
    run = subprocess.run([sys.executable, "-c", OPEN_DOCKS], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["torch"] is False, "opening a dock imported torch on the main thread"
    assert seen["line"] == "device: checking…"
    assert seen["buttons"] == [False, False, "Train (loading…)"], seen  # old code: Train and Denoise now enabled
    assert seen["buttons_then"] == [True, True, "Train"], seen
    assert seen["filled"].startswith("device: cpu"), seen
    assert "checking" not in seen["start"] and seen["start"].startswith("→ "), seen


# A fresh interpreter whose Qt application quits while the background thread is inside a slow import (napari
# closed a second after a dock opened): quitting waits for it, so an import is never cut off half-way. torch's,
# cut off by the interpreter's exit, printed a traceback on the terminal.
QUIT_DURING_IMPORT = """
import sys
sys.path.insert(0, sys.argv[1])
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication
from napari_selfsup_denoise._widgets import _warm

app = QApplication([])
_warm.FIRST, _warm.MODULES, _warm.probe_devices = ("slow_import_probe",), (), lambda: None
_warm._run = lambda: __import__("slow_import_probe")
_warm.warm_up()
QTimer.singleShot(0, app.quit)
app.exec_()
"""


def test_quitting_during_the_background_imports_waits_for_them(tmp_path):
    mark = tmp_path / "imported"
    probe = f"import time\ntime.sleep(1.0)\nopen({str(mark)!r}, 'w').write('done')\n"
    (tmp_path / "slow_import_probe.py").write_text(probe)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run(
        [sys.executable, "-c", QUIT_DURING_IMPORT, str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert mark.exists(), "napari quit with the background import cut off half-way"
