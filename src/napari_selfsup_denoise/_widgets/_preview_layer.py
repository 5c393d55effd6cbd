"""The ``"<name> preview"`` layer on the main thread: added over four turns of the event loop, then promoted.

The preview's own event builds the layer, hidden (a few ms); :class:`._staged.StagedAdd`
then inserts it without selecting it (the source stays selected, so the controls
panel is not swapped during training), builds its controls and shows it, one
step per turn. Later previews only replace the data. At the end the layer
becomes the result (:meth:`PreviewLayer.promote`), again one step per turn after
the steps of adding it: the denoised data (and name), then the selection. No
layer is removed or added then: removing one runs a full garbage collection,
adding one builds a visual and its controls.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from qtpy.QtCore import QObject

from ._layers import Snapshot, marked, robust_limits
from ._preview import Region, preview_layer_data, preview_translate
from ._staged import StagedAdd


def hidden_layer(snap: Snapshot, data: Any, name: str, limits: tuple[float, float], **kwargs: Any) -> Any:
    """A hidden image layer placed like the snapshot's source (``kwargs`` override the placement)."""
    from napari.layers import Image

    kw = {**snap.placement, **kwargs, "contrast_limits": limits}
    return Image(data, name=name, rgb=snap.rgb, visible=False, **kw)


def add_result_staged(
    viewer: Any,
    snap: Snapshot,
    data: Any,
    limits: tuple[float, float] | None,
    parent: Any,
    suffix: str = "denoised",
    decision: Any = None,
) -> StagedAdd:
    """Add ``data`` as ``"<name> <suffix>"`` one step per turn, then select it; returns the :class:`StagedAdd`.

    ``decision`` (the self-checks) goes into the layer's metadata; a suspect result's name ends in ``(suspect)``.
    """
    staged = StagedAdd(viewer, parent)
    name, meta = marked(snap, decision, suffix)
    lim = limits if limits is not None else robust_limits(data)
    staged.start(hidden_layer(snap, data, name, lim, metadata=meta), select=True)
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
        Owner of the timer that runs the later steps of adding and promoting the layer.
    """

    def __init__(self, viewer: Any, snap: Snapshot, parent: QObject | None = None) -> None:
        self.viewer, self.snap = viewer, snap
        self._add = StagedAdd(viewer, parent)
        self._promoted = False  # the layer is (becoming) the result

    @property
    def layer(self) -> Any:
        """The preview layer (None before the first preview and after the end)."""
        return self._add.layer

    @property
    def adding(self) -> bool:
        """True while the layer is being added or promoted (steps are left)."""
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
        """Run the steps left now (the dock closes); a layer not yet in the viewer is dropped."""
        self._add.settle()

    def promote(self, data: Any, limits: tuple[float, float] | None, decision: Any = None) -> Any:
        """Turn the layer into ``"<name> denoised"`` showing ``data``, then select it; None without a layer.

        ``decision`` marks it as :func:`add_result_staged` does (metadata, and ``(suspect)`` in the name).

        Each runs on its own turn after the steps of adding the layer still left
        (replacing a 3D stack's data and selecting a layer are ~30-50 ms of main-thread
        work each). If the user removes the layer meanwhile, the result is added as a
        new layer. Returns the layer, renamed a few turns later.
        """
        add, layer = self._add, self._add.layer
        if layer is None or self._promoted or not (add.adding or add.in_viewer()):
            return None
        self._promoted = True
        name, meta = marked(self.snap, decision)

        def _as_new() -> None:
            lim = limits if limits is not None else robust_limits(data)
            add.start(hidden_layer(self.snap, data, name, lim, metadata=meta), True)

        add.on_lost = _as_new
        add.then(lambda: self._swap(layer, data, limits, name, meta), add.select)
        return layer

    def _swap(self, layer: Any, data: Any, limits: tuple[float, float] | None, name: str, meta: dict[str, Any]) -> None:
        """The result's data, placement, contrast limits, name and metadata in the preview layer."""
        layer.data = data
        layer.metadata = meta
        if not np.allclose(layer.translate, self.snap.placement["translate"]):  # each setter re-slices the layer
            layer.translate = self.snap.placement["translate"]
        if limits is not None:
            layer.contrast_limits_range = limits
            layer.contrast_limits = limits
        layer.name = name

    def remove(self) -> None:
        """Remove the layer (the run ended without a result); a promoted layer stays."""
        if self._promoted:
            return
        self.settle()
        if self._add.in_viewer():
            self.viewer.layers.remove(self._add.layer)
        self._add.layer = None
