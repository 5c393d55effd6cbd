"""The result reaches the viewer without work on the main thread that would freeze it (issue 10, item 13).

Timing is left to benchmarks/bench_ui.py; these tests check the behaviour that
keeps the event loop free: no statistics over the result on the main thread,
the preview layer turned into the result (napari's layer removal runs a full
garbage collection, an addition builds a visual and its controls).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest


@pytest.fixture
def main_thread_stats(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(where, size) of every contrast-limit computation made on the main thread."""
    import napari.layers.image.image as napari_image

    from napari_selfsup_denoise._widgets import _layers, _preview_layer

    seen: list[tuple[str, int]] = []

    def _spy(name: str, func: Any) -> Any:
        def _wrapped(data: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                seen.append((name, int(np.prod(np.shape(data)))))
            return func(data, *args, **kwargs)

        return _wrapped

    for module in (_layers, _preview_layer):
        monkeypatch.setattr(module, "robust_limits", _spy("robust_limits", _layers.robust_limits))
    monkeypatch.setattr(napari_image, "calc_data_range", _spy("calc_data_range", napari_image.calc_data_range))
    return seen


def test_preview_layer_becomes_the_result_without_main_thread_statistics(
    results, open_widget, qtbot, noisy64, small, wait_idle, main_thread_stats
):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells", translate=(3.0, 4.0))
    small(widget, steps=None, seconds=3)
    added, removed = [], []
    viewer.layers.events.inserted.connect(lambda e: added.append(e.value))
    viewer.layers.events.removed.connect(lambda e: removed.append(e.value.name))
    main_thread_stats.clear()
    widget.start_training()
    wait_idle(widget)
    [result] = results(viewer, "cells")
    assert [layer.name for layer in added] == [result.name] and added[0] is result  # the preview, renamed
    assert removed == [] and "cells preview" not in viewer.layers
    assert result.data.shape == noisy64.shape and tuple(result.translate) == (3.0, 4.0)
    lo, hi = result.contrast_limits
    assert lo < float(np.median(result.data)) < hi
    assert main_thread_stats == []  # old code: robust_limits over the result on the main thread


def test_denoise_section_adds_the_result_without_main_thread_statistics(
    results, open_widget, qtbot, noisy64, small, wait_idle, main_thread_stats
):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=10)
    widget.form.preview.setChecked(False)
    widget.start_training()
    wait_idle(widget)
    main_thread_stats.clear()
    worker = widget.denoise.denoise(viewer.layers["cells"])
    qtbot.waitUntil(lambda: widget.denoise.is_idle(), timeout=120_000)
    assert worker is not None and len(results(viewer, "cells")) == 2  # "cells denoised [1]" added
    assert main_thread_stats == []


def test_a_new_preview_of_the_same_region_refreshes_its_layer_once(make_napari_viewer, qtbot, monkeypatch):
    """Each preview replaces the layer's data; the placement is set again only when the region moved."""
    from napari.components.viewer_model import ViewerModel
    from napari.layers import Layer

    from napari_selfsup_denoise._widgets._layers import snapshot
    from napari_selfsup_denoise._widgets._preview_layer import PreviewLayer

    viewer = make_napari_viewer()
    stack = viewer.add_image(np.zeros((8, 48, 48), np.float32), name="stack", scale=(2.0, 1.0, 1.0))
    snap, region = snapshot(stack), ((3, slice(0, 48), slice(0, 48)), (3, 0, 0))
    shown = PreviewLayer(viewer, snap)
    layer = shown.show(np.ones((48, 48), np.float32), region)
    qtbot.waitUntil(lambda: not shown.adding)
    calls: list[str] = []
    for cls, name in ((Layer, "refresh"), (ViewerModel, "_on_layers_change")):
        real = getattr(cls, name)

        def _counting(self: Any, *args: Any, _name: str = name, _real: Any = real, **kwargs: Any) -> Any:
            calls.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, _counting)
    shown.show(np.full((48, 48), 2.0, np.float32), region)
    assert float(layer.data.max()) == 2.0 and tuple(layer.translate) == (6.0, 0.0, 0.0)
    assert calls.count("refresh") == 1 and calls.count("_on_layers_change") == 1  # old code: 2 and 2
    calls.clear()
    shown.show(np.full((48, 48), 3.0, np.float32), ((5, slice(0, 48), slice(0, 48)), (5, 0, 0)))
    assert tuple(layer.translate) == (10.0, 0.0, 0.0) and calls.count("refresh") == 2  # moved: placed again


def test_progress_events_arriving_together_paint_the_bar_once(qtbot):
    """A step or a tile sets the bar without QProgressBar's synchronous repaint (each composites napari's canvas)."""
    from qtpy.QtCore import QEvent, QObject
    from qtpy.QtWidgets import QApplication, QLabel, QProgressBar, QPushButton

    from napari_selfsup_denoise._widgets._phases import RunView

    bar = QProgressBar()
    qtbot.addWidget(bar)
    bar.show()
    qtbot.waitExposed(bar)
    view = RunView(bar, QLabel(), QPushButton())
    view.started()
    paints: list[int] = []

    class _Paints(QObject):
        def eventFilter(self, obj: Any, ev: Any) -> bool:  # noqa: N802 (Qt name)
            if obj is bar and ev.type() == QEvent.Type.Paint:
                paints.append(bar.value())
            return False

    counter = _Paints()
    bar.installEventFilter(counter)
    QApplication.processEvents()
    paints.clear()
    for step in range(1, 6):  # five step events handled in one pass of the event loop
        view.step(step, 10, 1.0, f"loss {step}")
    assert paints == []  # old code: five synchronous repaints
    qtbot.waitUntil(lambda: len(paints) > 0)
    assert paints[0] == 5 and bar.value() == 5
