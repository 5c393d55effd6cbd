"""The preview layer is added over several turns of the event loop and leaves the source selected (issue 10, item 13).

Timing is left to benchmarks/bench_ui.py; these tests check the behaviour that
keeps each turn short: the preview's event only builds the layer, napari's
visual and controls come on later turns, and the new layer is not selected (the
controls panel is not swapped during training). The result is selected at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _controls(viewer: Any) -> dict[Any, Any]:
    return viewer.window._qt_viewer.controls.widgets


def test_source_stays_selected_while_the_preview_shows(open_widget, qtbot, small, wait_idle):
    viewer, _, widget = open_widget()
    stack = np.random.default_rng(1).normal(100, 10, (6, 48, 48)).astype(np.float32)
    src = viewer.add_image(stack, name="stack", scale=(3.0, 1.0, 1.0), translate=(5.0, 0.0, 0.0))
    viewer.dims.set_current_step(0, 4)
    widget.form.axes.setText("TYX")
    small(widget, steps=None, seconds=3)
    widget.start_training()

    def _showing() -> bool:
        return "stack preview" in viewer.layers and viewer.layers["stack preview"].visible

    qtbot.waitUntil(_showing, timeout=60_000)
    preview = viewer.layers["stack preview"]
    assert [x.name for x in viewer.layers.selection] == ["stack"]  # old code: ["stack preview"]
    assert preview in _controls(viewer)
    assert tuple(preview.translate) == (5.0 + 4 * 3.0, 0.0, 0.0) and tuple(preview.scale) == (3.0, 1.0, 1.0)
    wait_idle(widget)
    result = viewer.layers["stack denoised"]
    assert list(viewer.layers.selection) == [result]  # as napari selects a new layer
    assert tuple(result.translate) == tuple(src.translate) and result.visible


def _preview(make_napari_viewer: Any) -> tuple[Any, Any, Any]:
    from napari_selfsup_denoise._widgets._layers import snapshot
    from napari_selfsup_denoise._widgets._preview_layer import PreviewLayer

    viewer = make_napari_viewer()
    src = viewer.add_image(np.zeros((48, 48), np.float32), name="cells", translate=(2.0, 3.0))
    return viewer, src, PreviewLayer(viewer, snapshot(src))


def test_the_preview_event_only_builds_the_layer(make_napari_viewer, qtbot):
    viewer, src, shown = _preview(make_napari_viewer)
    region = ((slice(8, 40), slice(0, 32)), (8, 0))
    layer = shown.show(np.ones((32, 32), np.float32), region)
    assert layer not in viewer.layers and shown.adding  # napari's visual and controls: on later turns
    qtbot.waitUntil(lambda: not shown.adding)
    assert layer in viewer.layers and layer.visible and layer in _controls(viewer)
    assert list(viewer.layers.selection) == [src]
    assert tuple(layer.translate) == (10.0, 3.0) and layer.name == "cells preview"


def test_a_run_ending_while_the_layer_is_added_leaves_no_preview(make_napari_viewer, qtbot):
    viewer, _, shown = _preview(make_napari_viewer)
    region = ((slice(0, 32), slice(0, 32)), (0, 0))
    shown.show(np.ones((32, 32), np.float32), region)
    shown.remove()
    qtbot.wait(50)
    assert [x.name for x in viewer.layers] == ["cells"]
    shown.show(np.ones((32, 32), np.float32), region)
    qtbot.waitUntil(lambda: "cells preview" in viewer.layers)  # inserted; controls and showing still to come
    assert shown.adding
    result = shown.promote(np.zeros((48, 48), np.float32), (0.0, 1.0))
    assert result is not None and result.name == "cells denoised" and result.visible
    assert result in _controls(viewer) and list(viewer.layers.selection) == [result]
    assert tuple(result.translate) == (2.0, 3.0) and not shown.adding
