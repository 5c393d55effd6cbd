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


def test_source_stays_selected_while_the_preview_shows(results, open_widget, qtbot, small, wait_idle):
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
    [result] = results(viewer, "stack")
    assert list(viewer.layers.selection) == [result]  # as napari selects a new layer
    assert tuple(result.translate) == tuple(src.translate) and result.visible


def _preview(make_napari_viewer: Any, monkeypatch: Any) -> tuple[Any, Any, Any]:
    from napari_selfsup_denoise._widgets import _preview_layer, _staged
    from napari_selfsup_denoise._widgets._layers import snapshot

    monkeypatch.setattr(_staged, "STAGE_MS", 300)  # turns far enough apart to look between them
    viewer = make_napari_viewer()
    src = viewer.add_image(np.zeros((48, 48), np.float32), name="cells", translate=(2.0, 3.0))
    return viewer, src, _preview_layer.PreviewLayer(viewer, snapshot(src))


def test_the_preview_event_only_builds_the_layer(make_napari_viewer, qtbot, monkeypatch):
    viewer, src, shown = _preview(make_napari_viewer, monkeypatch)
    region = ((slice(8, 40), slice(0, 32)), (8, 0))
    layer = shown.show(np.ones((32, 32), np.float32), region)
    assert layer not in viewer.layers and shown.adding  # napari's visual and controls: on later turns
    qtbot.waitUntil(lambda: layer in viewer.layers)
    assert layer not in _controls(viewer) and not layer.visible  # the controls: on the next turn
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    assert layer in viewer.layers and layer.visible and layer in _controls(viewer)
    assert list(viewer.layers.selection) == [src]
    assert tuple(layer.translate) == (10.0, 3.0) and layer.name == "cells preview"


def test_selecting_or_removing_layers_before_the_controls_exist(make_napari_viewer, qtbot, monkeypatch):
    viewer, src, shown = _preview(make_napari_viewer, monkeypatch)
    layer = shown.show(np.ones((32, 32), np.float32), ((slice(0, 32), slice(0, 32)), (0, 0)))
    qtbot.waitUntil(lambda: layer in viewer.layers)
    viewer.layers.selection.active = layer  # napari's panel looks its controls up: it waits for them
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    panel = viewer.window._qt_viewer.controls
    assert panel.currentWidget() is _controls(viewer)[layer]
    shown.show(np.ones((32, 32), np.float32), ((slice(0, 32), slice(0, 32)), (0, 0)))
    viewer.layers.remove(layer)  # a new preview after the user removed it
    layer2 = shown.show(np.ones((32, 32), np.float32), ((slice(0, 32), slice(0, 32)), (0, 0)))
    qtbot.waitUntil(lambda: layer2 in viewer.layers)
    viewer.layers.remove(layer2)  # removed before its controls: napari's panel finds them
    assert [x.name for x in viewer.layers] == ["cells"]


def test_a_run_ending_while_the_layer_is_added_leaves_no_preview(make_napari_viewer, qtbot, monkeypatch):
    viewer, _, shown = _preview(make_napari_viewer, monkeypatch)
    region = ((slice(0, 32), slice(0, 32)), (0, 0))
    shown.show(np.ones((32, 32), np.float32), region)
    shown.remove()
    qtbot.wait(400)
    assert [x.name for x in viewer.layers] == ["cells"]
    shown.show(np.ones((32, 32), np.float32), region)
    qtbot.waitUntil(lambda: "cells preview" in viewer.layers)  # inserted; controls and showing still to come
    assert shown.adding
    result = shown.promote(np.zeros((48, 48), np.float32), (0.0, 1.0))
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    assert result is not None and result.name == "cells denoised" and result.visible
    assert result in _controls(viewer) and list(viewer.layers.selection) == [result]
    assert tuple(result.translate) == (2.0, 3.0)
    shown.remove()  # the end of the run: the result stays
    assert [x.name for x in viewer.layers] == ["cells", "cells denoised"]


def _states(viewer: Any, layer: Any, qtbot: Any, until: Any) -> list[tuple[Any, ...]]:
    """The layer's distinct states, sampled every 20 ms until ``until()``: controls, visible, name, selected."""
    from qtpy.QtCore import QTimer

    seen: list[tuple[Any, ...]] = []

    def _sample() -> None:
        state = (layer in _controls(viewer), layer.visible, layer.name, [x.name for x in viewer.layers.selection])
        if not seen or seen[-1] != state:
            seen.append(state)

    timer = QTimer()
    timer.timeout.connect(_sample)
    timer.start(20)
    _sample()
    qtbot.waitUntil(until, timeout=5000)
    _sample()
    timer.stop()
    return seen


def test_the_result_replaces_the_preview_one_step_per_turn(make_napari_viewer, qtbot, monkeypatch):
    """Stop's case: the result arrives while the preview is still being added; the steps left run first."""
    viewer, _, shown = _preview(make_napari_viewer, monkeypatch)
    layer = shown.show(np.ones((32, 32), np.float32), ((slice(0, 32), slice(0, 32)), (0, 0)))
    qtbot.waitUntil(lambda: layer in viewer.layers)
    assert shown.promote(np.zeros((48, 48), np.float32), (0.0, 1.0)) is layer
    assert layer.name == "cells preview" and layer.data.shape == (32, 32)  # old code: all done in this call
    steps = _states(viewer, layer, qtbot, lambda: not shown.adding)
    assert steps == [
        (False, False, "cells preview", ["cells"]),
        (True, False, "cells preview", ["cells"]),  # its controls
        (True, True, "cells preview", ["cells"]),  # shown
        (True, True, "cells denoised", ["cells"]),  # the result's data and name
        (True, True, "cells denoised", ["cells denoised"]),  # selected
    ]
    assert layer.data.shape == (48, 48) and tuple(layer.translate) == (2.0, 3.0)


def test_a_preview_removed_while_it_is_promoted_gives_a_new_result_layer(make_napari_viewer, qtbot, monkeypatch):
    viewer, _, shown = _preview(make_napari_viewer, monkeypatch)
    layer = shown.show(np.ones((32, 32), np.float32), ((slice(0, 32), slice(0, 32)), (0, 0)))
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    shown.promote(np.full((48, 48), 5.0, np.float32), (0.0, 10.0))
    viewer.layers.remove(layer)
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    result = viewer.layers["cells denoised"]
    assert result is not layer and result.visible and float(result.data.max()) == 5.0
    assert list(viewer.layers.selection) == [result] and tuple(result.translate) == (2.0, 3.0)


def test_without_preview_the_result_is_inserted_hidden_then_shown_and_selected(
    results, open_widget, qtbot, noisy64, small, wait_idle
):
    viewer, _, widget = open_widget()
    src = viewer.add_image(noisy64, name="cells", scale=(2.0, 2.0), translate=(3.0, 4.0))
    small(widget, steps=5)
    widget.form.preview.setChecked(False)
    at_insert: list[tuple[bool, list[str]]] = []
    viewer.layers.events.inserted.connect(
        lambda e: at_insert.append((e.value.visible, [x.name for x in viewer.layers.selection]))
    )
    widget.start_training()
    wait_idle(widget)
    qtbot.waitUntil(lambda: len(results(viewer, "cells")) == 1 and results(viewer, "cells")[0].visible)
    assert at_insert == [(False, ["cells"])]  # old code: [(True, ["cells"])], then selected in the same turn
    [result] = results(viewer, "cells")
    assert list(viewer.layers.selection) == [result] and result in _controls(viewer)
    assert tuple(result.translate) == tuple(src.translate) and tuple(result.scale) == (2.0, 2.0)


def test_without_napari_controls_panel_the_preview_and_result_still_arrive(make_napari_viewer, qtbot, monkeypatch):
    """A napari without ``window._qt_viewer.controls``: the layer is inserted with its controls in one turn, as usual.

    (The other private name, the layer list's ``_activate_on_insert``, stays: napari's own insert reads it.)
    """
    from napari_selfsup_denoise._widgets import _staged

    viewer, src, shown = _preview(make_napari_viewer, monkeypatch)
    monkeypatch.setattr(_staged, "layer_controls", lambda viewer: None)  # no ``window._qt_viewer.controls``
    layer = shown.show(np.ones((32, 32), np.float32), ((slice(0, 32), slice(0, 32)), (0, 0)))
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    assert layer in viewer.layers and layer.visible and layer in _controls(viewer)
    assert list(viewer.layers.selection) == [src]
    result = shown.promote(np.zeros((48, 48), np.float32), (0.0, 1.0))
    qtbot.waitUntil(lambda: not shown.adding, timeout=5000)
    assert result is layer and result.name == "cells denoised" and list(viewer.layers.selection) == [result]
    assert tuple(result.translate) == tuple(src.translate)
