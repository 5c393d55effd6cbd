"""How the train dock ends: closed, removed by napari, or its layer removed while it runs."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import QEvent

from ._worker import notify


class Lifecycle:
    """The train dock's ending, mixed into :class:`~.train.TrainWidget` (before ``QWidget``).

    It stops the worker and disconnects the dock from the viewer. The widget
    provides the attributes annotated below and ``_follow_view(on)``.
    """

    viewer: Any
    worker: Any
    _stops: Any
    _closed: bool
    _source: Any
    _shown: Any
    _adding: Any
    layer: Any
    target: Any
    denoise: Any
    denoise_now: Any

    def _on_layer_removed(self, event: Any) -> None:
        if self.worker is None or event.value is not self._source:
            return
        self._stops.set_all()
        notify(
            f"the layer '{event.value.name}' was removed while training: training stopped. "
            "The model so far is kept: save it or apply it to another layer.",
            error=True,
        )

    def teardown(self) -> None:
        """Stop the worker and disconnect from the viewer (closing the widget or the viewer)."""
        if self._closed:
            return
        self._closed = True
        self._stops.set_all()
        if self.worker is not None:
            self.worker.quit()
            self._follow_view(False)
        for adding in (self._shown, self._adding):  # no stage of adding a layer runs after the dock has gone
            if adding is not None:
                adding.settle()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.layer.teardown()
        self.target.teardown()
        self.denoise.teardown()
        self.denoise_now.teardown()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        """Closing the widget ends the worker."""
        self.teardown()
        super().closeEvent(event)  # type: ignore[misc]  # QWidget's, next in the widget's MRO

    def event(self, event: QEvent | None) -> bool:
        """napari removes a dock by un-parenting its widget: treat that as closing."""
        if event is not None and event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:  # type: ignore[attr-defined]
                self._docked = True
            elif getattr(self, "_docked", False):
                self.teardown()
        return super().event(event)  # type: ignore[misc, no-any-return]
