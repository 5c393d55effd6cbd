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
3. the next turn builds its controls (napari's own handler, called late);
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


def insert_without_controls(viewer: Any, layer: Any) -> Any:
    """Insert ``layer`` unselected, leaving its controls to be built later; returns the panel to build them in.

    Returns None when the controls were built now (no panel found).
    """
    controls = layer_controls(viewer)
    if controls is None:
        insert_unselected(viewer.layers, layer)
        return None
    with viewer.layers.events.inserted.blocker(controls._add):  # noqa: SLF001 (napari's handler)
        insert_unselected(viewer.layers, layer)
    return controls


def add_controls(controls: Any, layer: Any) -> None:
    """Build ``layer``'s controls with napari's own handler of the ``inserted`` event."""
    from napari.utils.events import Event

    controls._add(Event("inserted", value=layer))  # noqa: SLF001


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
        self.layer: Any = None
        self._controls: Any = None  # the panel that still has to build the layer's controls
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(STAGE_MS)
        self._timer.timeout.connect(self._next_stage)

    @property
    def adding(self) -> bool:
        """True while the layer is being added (stages 2 to 4 not all run)."""
        return self._timer.isActive()

    def _in_viewer(self) -> bool:
        return self.layer is not None and self.layer in self.viewer.layers

    def show(self, pv: np.ndarray, region: Region) -> Any:
        """Show a preview crop taken at ``region``; returns the layer (not yet in the viewer while it is added)."""
        data = preview_layer_data(np.asarray(pv, dtype=np.float32), region)
        translate = preview_translate(self.snap, region[1])
        if self.layer is None or not (self.adding or self._in_viewer()):  # none yet, or the user removed it
            self._build(data, translate)
            return self.layer
        layer = self.layer
        layer.data = data
        if not np.allclose(layer.translate, translate):  # each setter re-slices the layer and the viewer's ranges
            layer.translate = translate
        return layer

    def _build(self, data: np.ndarray, translate: tuple[float, ...]) -> None:
        """Stage 1: the hidden layer, with the source's limits (fixed, so later previews show the improvement)."""
        from napari.layers import Image

        try:
            limits = tuple(self.viewer.layers[self.snap.name].contrast_limits)
        except (KeyError, AttributeError):
            limits = robust_limits(data)
        kw = {**self.snap.placement, "translate": translate, "contrast_limits": limits}
        self.layer = Image(data, name=f"{self.snap.name} preview", rgb=self.snap.rgb, visible=False, **kw)
        self._timer.start()

    def _next_stage(self) -> None:
        """Stage 2 (insert), 3 (controls) or 4 (show)."""
        layer = self.layer
        if layer is None:
            return
        if layer not in self.viewer.layers:
            self._controls = insert_without_controls(self.viewer, layer)
        elif self._controls is not None:
            add_controls(self._controls, layer)
            self._controls = None
        else:
            layer.visible = True
            return
        self._timer.start()

    def settle(self) -> None:
        """Stop adding: a layer in the viewer gets its controls and is shown now, one not yet in it is dropped."""
        if not self.adding:
            return
        self._timer.stop()
        if not self._in_viewer():
            self.layer = None
            return
        if self._controls is not None:
            add_controls(self._controls, self.layer)
            self._controls = None
        self.layer.visible = True

    def promote(self, data: Any, limits: tuple[float, float] | None) -> Any:
        """Turn the layer into ``"<name> denoised"`` showing ``data`` and select it; None without a layer.

        Reusing the layer keeps the result off napari's costly paths on the main
        thread: removing a layer runs a full garbage collection, adding one builds
        its visual and its controls.
        """
        self.settle()
        if not self._in_viewer():
            return None
        layer, self.layer = self.layer, None
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
        if self._in_viewer():
            self.viewer.layers.remove(self.layer)
        self.layer = None
