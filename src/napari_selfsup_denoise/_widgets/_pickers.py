"""A combo box of image layers that follows the viewer's layer list."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QWidget

NONE_TEXT = "(none)"


class LayerCombo(QComboBox):
    """Image layers of ``viewer``, kept in sync with additions, removals and renames.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are listed.
    allow_none : bool
        Offer a ``(none)`` entry first (for optional choices such as a target).
    """

    layer_changed = Signal(object)

    def __init__(self, viewer: Any, allow_none: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._viewer, self._allow_none = viewer, allow_none
        self._layers: list[Any] = []
        events = viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.connect(self._on_layers_changed)
        self.currentIndexChanged.connect(self._on_index_changed)
        self._on_layers_changed()

    def layer(self) -> Any:
        """The picked layer, or None."""
        i = self.currentIndex() - (1 if self._allow_none else 0)
        return self._layers[i] if 0 <= i < len(self._layers) else None

    def set_layer(self, layer: Any) -> None:
        """Pick ``layer`` (or ``(none)`` for None)."""
        if layer is None:
            self.setCurrentIndex(0 if self._allow_none else -1)
            return
        for i, lay in enumerate(self._layers):
            if lay is layer:
                self.setCurrentIndex(i + (1 if self._allow_none else 0))

    def teardown(self) -> None:
        """Disconnect from the viewer (the widget is going away)."""
        events = self._viewer.layers.events
        for ev in (events.inserted, events.removed, events.reordered):
            ev.disconnect(self._on_layers_changed)
        for lay in self._layers:
            lay.events.name.disconnect(self._on_layers_changed)

    def _on_layers_changed(self, event: Any = None) -> None:
        from napari.layers import Image

        current = self.layer()
        for lay in self._layers:
            lay.events.name.disconnect(self._on_layers_changed)
        self._layers = [lay for lay in self._viewer.layers if isinstance(lay, Image)]
        self._layers = [lay for lay in self._layers if not lay.name.endswith((" preview",))]
        for lay in self._layers:
            lay.events.name.connect(self._on_layers_changed)
        self.blockSignals(True)
        self.clear()
        self.addItems(([NONE_TEXT] if self._allow_none else []) + [lay.name for lay in self._layers])
        self.blockSignals(False)
        if current in self._layers:
            self.set_layer(current)
        elif self._allow_none:
            self.setCurrentIndex(0)
        elif self._layers:
            self.setCurrentIndex(len(self._layers) - 1)
        if self.layer() is not current:
            self.layer_changed.emit(self.layer())

    def _on_index_changed(self, _index: int) -> None:
        self.layer_changed.emit(self.layer())
