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

    from napari_selfsup_denoise._widgets import _layers, _preview

    seen: list[tuple[str, int]] = []

    def _spy(name: str, func: Any) -> Any:
        def _wrapped(data: Any, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is threading.main_thread():
                seen.append((name, int(np.prod(np.shape(data)))))
            return func(data, *args, **kwargs)

        return _wrapped

    for module in (_layers, _preview):
        monkeypatch.setattr(module, "robust_limits", _spy("robust_limits", _layers.robust_limits))
    monkeypatch.setattr(napari_image, "calc_data_range", _spy("calc_data_range", napari_image.calc_data_range))
    return seen


def test_preview_layer_becomes_the_result_without_main_thread_statistics(
    open_widget, qtbot, noisy64, small, wait_idle, main_thread_stats
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
    result = viewer.layers["cells denoised"]
    assert [layer.name for layer in added] == ["cells denoised"] and added[0] is result  # the preview, renamed
    assert removed == [] and "cells preview" not in viewer.layers
    assert result.data.shape == noisy64.shape and tuple(result.translate) == (3.0, 4.0)
    lo, hi = result.contrast_limits
    assert lo < float(np.median(result.data)) < hi
    assert main_thread_stats == []  # old code: robust_limits over the result on the main thread


def test_denoise_section_adds_the_result_without_main_thread_statistics(
    open_widget, qtbot, noisy64, small, wait_idle, main_thread_stats
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
    assert worker is not None and "cells denoised [1]" in viewer.layers
    assert main_thread_stats == []
