"""Apply a model to any image layer, tile by tile, in a background worker."""

from __future__ import annotations

import threading
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..config import PredictConfig
from ..io import check_output_path
from ._axes import file_of, layer_axes_choice
from ._layers import LayerError, add_result, allocate_output, safe_name, snapshot
from ._model_box import ModelBox, ModelHolder
from ._phases import TEXTS, set_value
from ._pickers import LayerCombo
from ._preview_layer import add_result_staged
from ._staged import StagedAdd
from ._tile import TileBox
from ._warm import warm_up
from ._worker import Phase, check_status, checked_predict, notify, start_worker


class DenoiseSection(QWidget):
    """Pick a layer and denoise it with the current model; big lazy layers go to a zarr on disk.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer.
    holder : ModelHolder
        The shared current model.
    """

    def __init__(self, viewer: Any, holder: ModelHolder, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer, self.holder = viewer, holder
        self.worker: Any = None
        self._source: Any = None  # the layer being denoised
        self._adding: StagedAdd | None = None  # the result layer, added one step per turn
        self._stop = threading.Event()
        self.layer = LayerCombo(viewer)
        self.axes = QLineEdit()
        self.axes.setPlaceholderText("from the file, the model's axes, or a guess")
        self.axes_why = QLabel("")  # the axes that will be used when the field is empty, and why
        self.axes_why.setWordWrap(True)
        self.axes.textEdited.connect(self._on_axes_changed)
        self.tile = TileBox()  # "auto" or >= MIN_TILE, as on the command line
        self.tta = QCheckBox("average 8 flips / rotations (slower)")
        self.uncertainty = QCheckBox("uncertainty layer (blind-spot)")
        self.output = QLineEdit()
        self.output.setPlaceholderText("in memory (lazy layers: a temporary zarr)")
        browse = QPushButton("…")
        browse.clicked.connect(self._on_browse_clicked)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output)
        out_row.addWidget(browse)
        self.run_btn = QPushButton("Denoise")
        self.stop_btn = QPushButton("Stop")
        self.progress = QProgressBar()
        self._layout(out_row)
        self.run_btn.clicked.connect(self._on_run_clicked)
        self.stop_btn.clicked.connect(self._on_stop_clicked)
        holder.changed.connect(self._on_model_changed)
        self.layer.layer_changed.connect(self._on_layer_changed)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._set_running(False)
        self._on_axes_changed()

    def _layout(self, out_row: QHBoxLayout) -> None:
        form = QFormLayout()
        form.addRow("image", self.layer)
        form.addRow("axes", self.axes)
        form.addRow("", self.axes_why)
        form.addRow("tile", self.tile)
        form.addRow(self.tta)
        # the uncertainty checkbox stays out of the form until it is calibrated (issue 10, item 9)
        form.addRow("zarr output", out_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_btn)
        buttons.addWidget(self.stop_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)

    def is_idle(self) -> bool:
        """True when no prediction runs and the result layer is in place."""
        return self.worker is None and not (self._adding is not None and self._adding.adding)

    def _set_running(self, running: bool) -> None:
        model = self.holder.model
        self.run_btn.setEnabled(not running and model is not None)
        self.stop_btn.setEnabled(running)
        self.uncertainty.setEnabled(model is not None and model.algorithm == "blindspot")

    def _on_model_changed(self, _model: Any) -> None:
        self._set_running(self.worker is not None)
        self._on_axes_changed()

    def _on_layer_changed(self, layer: Any) -> None:
        if self.worker is None and layer is not self._source:  # the bar showed another layer's run
            self.progress.reset()
            self.progress.setFormat("%p%")
        self._on_axes_changed()

    def axes_for(self, layer: Any) -> str:
        """The axes the layer will be denoised with: typed, else the one rule (file, model, guess)."""
        model = self.holder.model
        typed = self.axes.text().strip()
        if typed:
            return typed
        labels = tuple(self.viewer.dims.axis_labels)
        return layer_axes_choice(layer, labels, model.axes if model is not None else None).axes

    def _on_axes_changed(self, _text: str = "") -> None:
        layer, model = self.layer.layer(), self.holder.model
        if self.axes.text().strip() or layer is None:
            self.axes_why.setText("typed" if self.axes.text().strip() else "")
            return
        try:
            labels = tuple(self.viewer.dims.axis_labels)
            choice = layer_axes_choice(layer, labels, model.axes if model is not None else None)
        except ValueError:
            self.axes_why.setText("")
            return
        self.axes_why.setText(choice.label())

    def _on_layer_removed(self, event: Any) -> None:
        if self.worker is None or event.value is not self._source:
            return
        self._stop.set()
        notify(f"the layer '{event.value.name}' was removed while denoising: denoising stopped, no layer added")

    def _on_browse_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder for the denoised zarr")
        if path:
            name = safe_name(self.layer.layer().name if self.layer.layer() else "image")
            self.output.setText(f"{path}/{name}-denoised.zarr")

    def _on_run_clicked(self) -> None:
        self.denoise(self.layer.layer())

    def _prepare(self, layer: Any) -> tuple[Any, str, PredictConfig, Any, Any, str | None]:
        """Main thread: check the inputs and allocate the outputs (raises ValueError / OSError)."""
        model = self.holder.model
        if model is None:
            raise LayerError("no model yet: train one or load a model file")
        if layer is None:
            raise LayerError("pick an image layer to denoise")
        snap = snapshot(layer, copy=False)
        axes = model.resolve_axes(tuple(snap.data.shape), self.axes_for(layer))
        model.check_channels(int(snap.data.shape[axes.index("C")]) if "C" in axes else 1)
        unc = self.uncertainty.isChecked() and model.algorithm == "blindspot"
        pcfg = PredictConfig(tile=self.tile.value() or None, tta=self.tta.isChecked(), uncertainty=unc)
        path = self.output.text().strip() or None
        unc_path = path.replace(".zarr", "-uncertainty.zarr") if path and unc else None
        source = file_of(layer)
        for p in (path, unc_path):  # the zarr is replaced if it exists, but never the layer's own file
            if p:
                check_output_path(p, [source] if source else [], overwrite=True)
        out, path = allocate_output(snap, axes, path)
        unc_out = allocate_output(snap, axes, unc_path, "uncertainty")[0] if unc else None
        return snap, axes, pcfg, out, unc_out, path

    def denoise(self, layer: Any) -> Any:
        """Start denoising ``layer`` with the current model; returns the worker (None on a bad input)."""
        try:
            snap, axes, pcfg, out, unc_out, path = self._prepare(layer)
        except (ValueError, OSError) as exc:
            notify(str(exc), error=True)
            return None
        self._stop.clear()
        self._source = layer
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.worker = start_worker(
            checked_predict,
            self.holder.model,
            snap.data,
            pcfg,
            axes,
            stop=self._stop,
            out=out,
            uncertainty_out=unc_out,
            handlers={
                "yielded": self._on_progress,
                "returned": lambda res: self._on_done(snap, res, path),
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        self._set_running(True)
        return self.worker

    def _on_progress(self, ev: Any) -> None:
        if self._stop.is_set():  # the bar says what is being stopped
            return
        if isinstance(ev, Phase):  # the check on the image, then the first tile (no busy bar: _phases.py)
            self.progress.setFormat(TEXTS[ev.name][1])
            return
        if not ev.done:  # prediction started: the Phase("denoising") before it said so
            return
        self.progress.setMaximum(max(1, ev.total))
        self.progress.setFormat(f"tile {ev.done}/{ev.total} · ETA {ev.eta:.0f} s")
        set_value(self.progress, ev.done)

    def _on_done(self, snap: Any, res: Any, path: str | None) -> None:
        if self._source not in self.viewer.layers:
            return  # removed mid-run: _on_layer_removed said so
        if self._stop.is_set():
            notify("denoising stopped; no layer added")
            return
        self.progress.setFormat(f"done · {check_status(self.holder.model, res.decision)}")
        self._adding = add_result_staged(self.viewer, snap, res.out, res.limits, self, decision=res.decision)
        if res.unc is not None:  # an option kept out of the form (uncertainty not calibrated): added in one turn
            add_result(self.viewer, snap, res.unc, "uncertainty", colormap="magma")
        if path is not None:
            notify(f"denoised '{snap.name}' written to {path}")

    def _on_error(self, exc: Exception) -> None:
        self.progress.setFormat("failed")

    def _on_finished(self) -> None:
        self.worker = None
        self._set_running(False)

    def _on_stop_clicked(self) -> None:
        self._stop.set()
        self.stop_btn.setEnabled(False)  # at once: the pass in progress ends after its current network layer
        self.progress.setFormat("stopping: the denoising pass in progress ends…")

    def teardown(self) -> None:
        """Stop a running prediction and disconnect from the viewer."""
        self._stop.set()
        if self.worker is not None:
            self.worker.quit()
        if self._adding is not None:  # no step of adding the result runs after the dock has gone
            self._adding.settle()
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.layer.teardown()


class DenoiseWidget(QWidget):
    """Dock widget: load a model file and denoise any image layer with it."""

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.holder = ModelHolder()
        self.model_box = ModelBox(self.holder, notify)
        self.section = DenoiseSection(napari_viewer, self.holder)
        lay = QVBoxLayout(self)
        lay.addWidget(self.model_box)
        lay.addWidget(self.section)
        lay.addStretch(1)
        self.destroyed.connect(self.section._stop.set)
        warm_up()  # the engine's first-run imports, off the main thread

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        """Stop the worker when the widget closes."""
        self.section.teardown()
        super().closeEvent(event)
