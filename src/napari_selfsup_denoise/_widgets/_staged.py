"""Adding a layer to napari over several turns of the event loop, so that no turn blocks it for long.

Adding an image layer is one block of main-thread work in napari: the layer
list's ``inserted`` event builds the layer's vispy visual (~40 ms CPU for the 3D
sample) and its Qt controls (~40 ms, and ~20 ms more to lay the dock out
again), selects the new layer (which swaps the controls panel), and the new
visual's first draw follows (~25 ms under Xvfb). In one turn that blocked the
event loop for 120-150 ms, above the 100 ms issue 10 (item 13) allows.
:class:`StagedAdd` runs one step per turn: the layer is inserted without being
selected and without its controls; its controls; shown; selected. More steps
(the preview becoming the result: its data replaced, then selected) can follow.

Two steps use napari internals (the ``_activate_on_insert`` flag of the layer
list, ``viewer.window._qt_viewer.controls``); where they are missing the layer is
inserted, with its controls, in one turn as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QObject, QTimer

# Delay between the steps: long enough for the event loop to serve what is waiting (input, timers, draws).
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
    """Adds a built (hidden) layer to the viewer one step per turn: inserted unselected, its controls, shown.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer to add to.
    parent : QObject, optional
        Owner of the timer that runs the steps.
    """

    def __init__(self, viewer: Any, parent: QObject | None = None) -> None:
        self.viewer = viewer
        self.layer: Any = None
        self.on_lost: Callable[[], None] | None = None  # called when the user removed the layer mid-way
        self._controls: Any = None  # the panel that still has to build the layer's controls
        self._steps: list[Callable[[], None]] = []
        self._timer = QTimer(parent)
        self._timer.setSingleShot(True)
        self._timer.setInterval(STAGE_MS)
        self._timer.timeout.connect(self._next_step)

    @property
    def adding(self) -> bool:
        """True while steps are left (the layer is not yet inserted, shown or selected)."""
        return bool(self._steps)

    def in_viewer(self) -> bool:
        """Whether the layer is in the viewer (inserted, shown or not)."""
        return self.layer is not None and self.layer in self.viewer.layers

    def start(self, layer: Any, select: bool = False) -> None:
        """Add ``layer`` (built with ``visible=False``) on the next turns; ``select`` it after it is shown."""
        self.layer, self._controls, self.on_lost = layer, None, None
        self._steps = [self._insert, self._build_controls, self._show] + ([self.select] if select else [])
        self._timer.start()

    def then(self, *steps: Callable[[], None]) -> None:
        """Run ``steps`` after the pending ones, one per turn (each only while the layer is in the viewer)."""
        self._steps += steps
        if not self._timer.isActive():
            self._timer.start()

    def _next_step(self) -> None:
        if not self._steps:
            return
        if self._steps[0] != self._insert and not self.in_viewer():  # the user removed it: not added again
            self._drop()
            if self.on_lost is not None:
                self.on_lost()
            return
        self._steps.pop(0)()
        if self._steps:
            self._timer.start()

    def _drop(self) -> None:
        self._timer.stop()
        self._steps, self.layer = [], None
        if self._controls is not None:  # never built: stop holding napari's panel
            self._watch(self._controls, False)
            self._controls = None

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

    def select(self) -> None:
        """Select the layer alone, as napari does for a new layer (the controls panel shows its controls)."""
        self.viewer.layers.selection.active = self.layer

    def settle(self) -> None:
        """Run the steps left now (the dock closes); a layer not yet in the viewer is dropped."""
        self._timer.stop()
        if not self._steps:
            return
        if self._steps[0] == self._insert or not self.in_viewer():
            self._drop()
            return
        steps, self._steps = self._steps, []
        for step in steps:
            step()
