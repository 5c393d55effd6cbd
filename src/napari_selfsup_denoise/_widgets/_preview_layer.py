"""The ``"<name> preview"`` layer on the main thread: added over four turns of the event loop, then promoted.

Adding an image layer is one block of main-thread work in napari: the layer
list's ``inserted`` event builds the layer's vispy visual (~40 ms CPU for the 3D
sample's preview) and its Qt controls (~40 ms, and ~20 ms more to lay the dock
out again), selects the new layer (which swaps the controls panel), and the new
visual's first draw follows (~25 ms under Xvfb). In one turn that blocked the
event loop for 120-150 ms, above the 100 ms the issue allows.
:class:`PreviewLayer` spreads it:

1. the preview's own event builds the layer, hidden (a few ms);
2. the next turn inserts it without selecting it (the source stays selected, so
   the controls panel is not swapped) and without its controls: napari's visual;
3. the next turn builds its controls (napari's own handler, called late; at once
   if the layer is removed before; napari's panel update waits for them);
4. the next turn shows it; its first draw comes after.

Steps 2 and 3 use napari internals (the ``_activate_on_insert`` flag of the
layer list, ``viewer.window._qt_viewer.controls``); where they are missing the
layer is inserted in one turn as usual. Later previews only replace the data.
At the end the layer becomes the result (:meth:`PreviewLayer.promote`): no
layer is removed or added then.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer

from ._layers import Snapshot, robust_limits
from ._preview import Region, preview_layer_data, preview_translate

# Delay between the stages: long enough for the event loop to serve what is waiting (input, timers, draws).
STAGE_MS = 1


def insert_unselected(layers: Any, layer: Any) -> None:
    """Append ``layer`` to napari's layer list without selecting it (the selection is left as it is).

    napari selects an inserted layer unless its (private) ``_activate_on_insert``
    flag is off; without that flag the layer is selected as usual.
    """
    flag = getattr(layers, "_activate_on_insert", None)
    if flag is not None:
        layers._activate_on_insert = False  # noqa: SLF001 (napari's SelectableEventedList flag)
    try:
        layers.append(layer)
    finally:
        if flag is not None:
            layers._activate_on_insert = flag  # noqa: SLF001


def layer_controls(viewer: Any) -> Any:
    """napari's layer-controls panel (its ``_add`` builds a layer's controls), or None where there is none."""
    controls = getattr(getattr(getattr(viewer, "window", None), "_qt_viewer", None), "controls", None)
    return controls if callable(getattr(controls, "_add", None)) else None


def add_controls(controls: Any, layer: Any) -> None:
    """Build ``layer``'s controls with napari's own handler of the ``inserted`` event."""
    from napari.utils.events import Event

    controls._add(Event("inserted", value=layer))  # noqa: SLF001


class StagedAdd:
    """Adds a built (hidden) layer to the viewer over three turns: inserted unselected, its controls, shown.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer to add to.
    parent : QObject, optional
        Owner of the timer that runs the stages.
    """

    def __init__(self, viewer: Any, parent: QObject | None = None) -> None:
        self.viewer = viewer
        self.layer: Any = None
        self._controls: Any = None  # the panel that still has to build the layer's controls
        self._select = False
        self._stage = 0  # the next stage: 0 insert, 1 controls, 2 show
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(STAGE_MS)
        self._timer.timeout.connect(self._next_stage)

    @property
    def adding(self) -> bool:
        """True while the layer is being added (not yet shown)."""
        return self._timer.isActive()

    def in_viewer(self) -> bool:
        """Whether the layer is in the viewer (inserted, shown or not)."""
        return self.layer is not None and self.layer in self.viewer.layers

    def start(self, layer: Any, select: bool = False) -> None:
        """Add ``layer`` (built with ``visible=False``) on the next turns; ``select`` it when it is shown."""
        self.layer, self._controls, self._select, self._stage = layer, None, select, 0
        self._timer.start()

    def _next_stage(self) -> None:
        if self.layer is None:
            return
        if self._stage > 0 and not self.in_viewer():  # the user removed it meanwhile: not added again
            self.layer = None
            return
        stage, self._stage = self._stage, self._stage + 1
        if stage == 0:
            self._insert()
        elif stage == 1:
            self._build_controls()
        else:
            self._show()
            return
        self._timer.start()

    def _insert(self) -> None:
        """Insert the layer unselected; its controls are left to the next turn where napari allows it."""
        controls = layer_controls(self.viewer)
        if controls is None or getattr(self.viewer.layers, "_activate_on_insert", None) is None:
            insert_unselected(self.viewer.layers, self.layer)  # the controls are built now
            return
        self._controls = controls
        self._watch(controls, True)
        with self.viewer.layers.events.inserted.blocker(controls._add):  # noqa: SLF001 (napari's handler)
            insert_unselected(self.viewer.layers, self.layer)

    def _watch(self, controls: Any, on: bool) -> None:
        """Until the layer has controls: build them when it is removed, and hold napari's panel update.

        napari looks a layer's controls up when it is removed (after ``removing``)
        and when the selection changes (its panel's ``_populate``).
        """
        removing, changed = self.viewer.layers.events.removing, self.viewer.layers.selection.events.changed
        if on:
            removing.connect(self._on_removing)
            changed.block(controls._populate)  # noqa: SLF001
        else:
            removing.disconnect(self._on_removing)
            changed.unblock(controls._populate)  # noqa: SLF001

    def _on_removing(self, event: Any) -> None:
        if self.viewer.layers[event.index] is self.layer:
            self._build_controls()

    def _build_controls(self) -> None:
        """Build the layer's controls now (napari's own handler of ``inserted``), then update the panel."""
        controls, self._controls = self._controls, None
        if controls is None:
            return
        self._watch(controls, False)
        add_controls(controls, self.layer)
        controls._populate()  # noqa: SLF001 (the selection may have changed meanwhile)

    def _show(self) -> None:
        self.layer.visible = True
        if self._select:
            self.viewer.layers.selection.active = self.layer  # as napari does for a new layer

    def settle(self) -> None:
        """Stop adding: a layer in the viewer gets its controls and is shown now, one not yet in it is dropped."""
        if not self.adding:
            return
        self._timer.stop()
        if not self.in_viewer():
            self.layer = None
            return
        self._build_controls()
        self._show()


def hidden_layer(snap: Snapshot, data: Any, name: str, limits: tuple[float, float], **kwargs: Any) -> Any:
    """A hidden image layer placed like the snapshot's source (``kwargs`` override the placement)."""
    from napari.layers import Image

    kw = {**snap.placement, **kwargs, "contrast_limits": limits}
    return Image(data, name=name, rgb=snap.rgb, visible=False, **kw)


def add_result_staged(viewer: Any, snap: Snapshot, data: Any, limits: tuple[float, float] | None, parent: Any) -> Any:
    """Add ``data`` as ``"<name> denoised"`` over three turns, selected when shown; returns the :class:`StagedAdd`."""
    staged = StagedAdd(viewer, parent)
    name = f"{snap.name} denoised"
    staged.start(hidden_layer(snap, data, name, limits if limits is not None else robust_limits(data)), select=True)
    return staged


class PreviewLayer:
    """Shows the live previews of one run as the ``"<name> preview"`` layer over the source.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer the source layer is in.
    snap : Snapshot
        The run's snapshot of the source layer (its name and placement).
    parent : QObject, optional
        Owner of the timer that runs the later stages of adding the layer.
    """

    def __init__(self, viewer: Any, snap: Snapshot, parent: QObject | None = None) -> None:
        self.viewer, self.snap = viewer, snap
        self._add = StagedAdd(viewer, parent)

    @property
    def layer(self) -> Any:
        """The preview layer (None before the first preview and after the end)."""
        return self._add.layer

    @property
    def adding(self) -> bool:
        """True while the layer is being added (not yet shown)."""
        return self._add.adding

    def show(self, pv: np.ndarray, region: Region) -> Any:
        """Show a preview crop taken at ``region``; returns the layer (not yet in the viewer while it is added)."""
        data = preview_layer_data(np.asarray(pv, dtype=np.float32), region)
        translate = preview_translate(self.snap, region[1])
        layer = self._add.layer
        if layer is None or not (self.adding or self._add.in_viewer()):  # none yet, or the user removed it
            # The source's limits (same intensity scale), fixed, so later previews show the improvement.
            try:
                limits = tuple(self.viewer.layers[self.snap.name].contrast_limits)
            except (KeyError, AttributeError):
                limits = robust_limits(data)
            layer = hidden_layer(self.snap, data, f"{self.snap.name} preview", limits, translate=translate)
            self._add.start(layer)
            return layer
        layer.data = data
        if not np.allclose(layer.translate, translate):  # each setter re-slices the layer and the viewer's ranges
            layer.translate = translate
        return layer

    def settle(self) -> None:
        """Stop adding: a layer in the viewer gets its controls and is shown now, one not yet in it is dropped."""
        self._add.settle()

    def promote(self, data: Any, limits: tuple[float, float] | None) -> Any:
        """Turn the layer into ``"<name> denoised"`` showing ``data`` and select it; None without a layer.

        Reusing the layer keeps the result off napari's costly paths on the main
        thread: removing a layer runs a full garbage collection, adding one builds
        its visual and its controls.
        """
        self.settle()
        if not self._add.in_viewer():
            return None
        layer, self._add.layer = self._add.layer, None
        layer.data = data
        layer.translate = self.snap.placement["translate"]
        if limits is not None:
            layer.contrast_limits_range = limits
            layer.contrast_limits = limits
        layer.name = f"{self.snap.name} denoised"
        self.viewer.layers.selection.active = layer  # as napari does for a new layer
        return layer

    def remove(self) -> None:
        """Remove the layer (the run ended without a result)."""
        self.settle()
        if self._add.in_viewer():
            self.viewer.layers.remove(self._add.layer)
        self._add.layer = None
