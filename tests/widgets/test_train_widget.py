"""The train dock widget: manifest, a full run, Stop, responsiveness, preview, teardown."""

from __future__ import annotations

import threading

import numpy as np
from qtpy.QtCore import QTimer

PLUGIN = "napari-selfsup-denoise"
DENOISE_WIDGET = "Denoise with a model"


def test_widgets_and_samples_come_from_the_manifest(open_widget, wait_for):
    from napari_selfsup_denoise._widgets.denoise import DenoiseWidget
    from napari_selfsup_denoise._widgets.train import TrainWidget

    viewer, _, widget = open_widget()
    assert isinstance(widget, TrainWidget)
    _, other = viewer.window.add_plugin_dock_widget(PLUGIN, DENOISE_WIDGET)
    assert isinstance(other, DenoiseWidget)
    viewer.open_sample(PLUGIN, "nuclei2d")
    assert viewer.layers[-1].data.shape == (512, 512)
    assert widget.layer.layer() is viewer.layers[-1]  # the picker follows the layer list
    assert widget.form.axes.text() == "YX"
    # the device is probed off the main thread when the dock opens ("device: checking…" until then)
    wait_for(lambda: widget.device_label.text().startswith("device: cpu"))
    algorithms = {widget.form.algorithm.itemData(i) for i in range(widget.form.algorithm.count())}
    assert algorithms == {"auto", "n2v", "n2v2", "structn2v", "blindspot", "n2n"}


def test_train_adds_a_denoised_layer_placed_like_the_source(results, open_widget, noisy64, small, train_to_end):
    viewer, _, widget = open_widget()
    src = viewer.add_image(
        noisy64, name="cells", scale=(2.0, 0.5), translate=(10.0, -3.0), units=("nm", "nm"), metadata={"id": 7}
    )
    small(widget, steps=20)
    bar: list[int] = []
    widget.progress.valueChanged.connect(bar.append)
    train_to_end(widget)
    [out] = results(viewer, "cells")
    assert out.data.shape == noisy64.shape and out.data.dtype == np.float32
    np.testing.assert_allclose(out.scale, src.scale)
    np.testing.assert_allclose(out.translate, src.translate)
    assert tuple(str(u) for u in out.units) == tuple(str(u) for u in src.units)
    assert out.metadata["id"] == 7
    lo, hi = out.contrast_limits
    assert out.data.min() <= hi and out.data.max() >= lo and hi > lo
    assert set(range(1, 21)) <= set(bar)  # every training step moved the progress bar
    assert widget.plot.steps == list(range(1, 21))  # every progress event reached the plot
    assert widget.holder.model is not None and widget.holder.model.summary["steps"] == 20
    assert widget.train_btn.isEnabled() and not widget.stop_btn.isEnabled()
    assert "cells preview" not in viewer.layers


def test_stop_ends_training_and_keeps_the_result(results, open_widget, noisy64, small, wait_idle, wait_for):
    # Stop is honoured after the step in progress (tests/engine/test_stop_latency.py); its latency in
    # seconds is measured by benchmarks/bench_ui.py --stop-after (a timing assertion flakes under load).
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=None, seconds=120)
    widget.start_training()
    wait_for(lambda: len(widget.plot.steps) >= 3)
    widget.stop_btn.click()
    assert widget._stops.train.is_set() and widget.status.text().startswith("stopping: ")
    wait_idle(widget)
    assert widget.holder.model.summary["ended_by"] == "stopped"
    assert len(results(viewer, "cells")) == 1


def test_event_loop_keeps_ticking_while_training(open_widget, qtbot, noisy64, small, wait_idle, monkeypatch):
    # Behaviour only: training runs off the main thread, and the event loop serves timers between steps.
    # How long its gaps are is a timing question for benchmarks/bench_ui.py (flaky under load as a test).
    from napari_selfsup_denoise._widgets import train as train_module

    threads: list[threading.Thread] = []
    original = train_module.train_then_denoise

    def _recording(*args, **kwargs):
        threads.append(threading.current_thread())
        return (yield from original(*args, **kwargs))

    monkeypatch.setattr(train_module, "train_then_denoise", _recording)
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=30)
    steps_seen: list[int] = []
    ticks_between: list[int] = []
    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(lambda: ticks_between.append(len(steps_seen)))
    worker = widget.start_training()
    worker.yielded.connect(lambda ev: steps_seen.append(getattr(ev, "step", -1)))
    timer.start()
    wait_idle(widget)
    timer.stop()
    assert threads and threads[0] is not threading.main_thread()
    assert len(set(steps_seen)) > 5
    assert len({n for n in ticks_between if 0 < n < len(steps_seen)}) >= 1  # ticks while steps were coming


def test_live_preview_shows_the_slice_on_screen(results, open_widget, qtbot, small, wait_idle):
    viewer, _, widget = open_widget()
    rng = np.random.default_rng(1)
    stack = rng.normal(100, 10, (6, 48, 48)).astype(np.float32)
    src = viewer.add_image(stack, name="stack", scale=(3.0, 1.0, 1.0), translate=(5.0, 0.0, 0.0))
    viewer.dims.set_current_step(0, 4)
    widget.form.axes.setText("TYX")  # a 2D model over a time series
    small(widget, steps=None, seconds=3)
    seen: list[tuple] = []
    viewer.layers.events.inserted.connect(
        lambda e: seen.append((e.value.name, e.value.data.shape, tuple(e.value.translate)))
    )
    widget.start_training()
    wait_idle(widget)
    previews = [s for s in seen if s[0] == "stack preview"]
    assert previews, "no preview layer appeared during training"
    _, shape, translate = previews[0]
    assert shape == (1, 48, 48)
    assert translate == (src.translate[0] + 4 * src.scale[0], 0.0, 0.0)  # sits on the slice on screen
    assert "stack preview" not in viewer.layers  # replaced by the result
    assert results(viewer, "stack")[0].data.shape == stack.shape


def test_continue_training_fine_tunes_the_current_model(open_widget, qtbot, noisy64, small, wait_idle):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=5)
    widget.start_training()
    wait_idle(widget)
    first = widget.holder.model
    widget.form.continue_training.setChecked(True)
    widget.form.base_channels.setValue(16)  # ignored: the network comes from the model
    widget.start_training()
    wait_idle(widget)
    assert widget.holder.model is not first
    assert widget.holder.model.net is first.net
    assert widget.holder.model.config.base_channels == 8


def test_closing_the_widget_mid_training_stops_the_worker(results, open_widget, qtbot, noisy64, small, wait_for):
    viewer, dock, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=None, seconds=120)
    worker = widget.start_training()
    wait_for(lambda: len(widget.plot.steps) >= 2)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        viewer.window.remove_dock_widget(dock)
    assert widget._stops.train.is_set()
    assert not results(viewer, "cells")


def test_closing_the_viewer_mid_training_stops_the_worker(open_widget, qtbot, noisy64, small, wait_for):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=None, seconds=120)
    worker = widget.start_training()
    wait_for(lambda: len(widget.plot.steps) >= 2)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        viewer.close()
