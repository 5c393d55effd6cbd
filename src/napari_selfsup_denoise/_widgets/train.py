"""The train dock widget: pick a layer, train in a background worker, watch, stop, get the result."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget
from superqt import QCollapsible

from ..config import TrainConfig
from ..engine.events import PredictProgress, TrainProgress
from ._axes import file_of, layer_axes_choice
from ._form import TrainForm
from ._job import Request, prepare
from ._layers import Snapshot, add_result
from ._lifecycle import Lifecycle
from ._model_box import IMAGE_PLACEHOLDER, TARGET_PLACEHOLDER, ModelBox, ModelHolder
from ._phases import RunView
from ._pickers import LayerCombo
from ._plot import LossPlot, clock
from ._preview import PreviewSource, view_camera
from ._preview_layer import PreviewLayer, add_result_staged
from ._staged import StagedAdd
from ._warm import ready, warm_up, warmed, when_ready
from ._worker import Phase, Stops, TrainResult, check_status, notify, start_worker, train_then_denoise
from ._zero_shot import DenoiseNow
from .denoise import DenoiseSection


class TrainWidget(Lifecycle, QWidget):
    """Train a self-supervised denoiser on an image layer and add ``<name> denoised``.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it when the dock opens).
    """

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.holder = ModelHolder()
        self.worker: Any = None
        self._stops = Stops()
        self._closed = False
        self._source: Any = None
        self._snap: Snapshot | None = None
        self._preview: PreviewSource | None = None
        self._shown: PreviewLayer | None = None
        self._adding: StagedAdd | None = None  # the result layer, added over a few turns
        self._last_config: TrainConfig | None = None
        self._build()
        self.view = RunView(self.progress, self.status, self.stop_btn)
        self.layer.layer_changed.connect(self._on_layer_changed)
        self.form.device.currentIndexChanged.connect(self._on_device_changed)
        self.form.precision.currentIndexChanged.connect(self._on_device_changed)
        self.train_btn.clicked.connect(self._on_train_clicked)
        self.stop_btn.clicked.connect(self._on_stop_clicked)
        self.viewer.layers.events.removed.connect(self._on_layer_removed)
        self.destroyed.connect(self._stops.set_all)
        self._on_layer_changed(self.layer.layer())
        self.device_label.setText("device: checking…")
        warm_up()  # after building: its C-extension loads hold the interpreter lock, and would slow the build
        when_ready(self, self._on_ready)  # the device line and the device's defaults need torch
        when_ready(self, lambda: self._set_running(self.worker is not None), test=warmed)
        self._set_running(False)

    def _build(self) -> None:
        self.layer = LayerCombo(self.viewer)
        self.target = LayerCombo(self.viewer, allow_none=True)
        self.target.setToolTip("Noise2Noise: a second noisy acquisition of the same field")
        self.form = TrainForm(current_model=lambda: self.holder.model)
        self.form.insert_row(0, "image", self.layer)
        self.form.insert_row(1, "target (N2N)", self.target)
        self.device_label = QLabel()
        self.train_btn, self.stop_btn = QPushButton("Train"), QPushButton("Stop")
        self.stop_btn.setToolTip("End training now; the model so far is kept and applied")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("idle")
        self.status.setWordWrap(True)
        self.plot = LossPlot()
        self.model_box = ModelBox(self.holder, notify, settings=self._settings)
        self.denoise = DenoiseSection(self.viewer, self.holder)
        apply = QCollapsible("Apply a model to another layer")
        apply.addWidget(self.denoise)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_btn)
        buttons.addWidget(self.stop_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.form)
        lay.addWidget(self.device_label)
        lay.addLayout(buttons)
        self.denoise_now = DenoiseNow(self.viewer, self.layer.layer, lambda: self.form.axes.text().strip() or None)
        lay.addWidget(self.denoise_now)
        for w in (self.progress, self.status, self.plot, self.model_box, apply):
            lay.addWidget(w)
        lay.addStretch(1)

    # --- state -----------------------------------------------------------------------------

    def is_idle(self) -> bool:
        """True when no training or denoising of the result runs, and the result layer is in place (and selected)."""
        return self.worker is None and not any(a is not None and a.adding for a in (self._shown, self._adding))

    def _set_running(self, running: bool) -> None:
        # Until the background imports end (_warm.warmed), Train would import torch on the main thread.
        self.train_btn.setEnabled(not running and warmed())
        self.train_btn.setText("Train" if warmed() else "Train (loading…)")
        self.stop_btn.setEnabled(running)
        self.form.setEnabled(not running)

    def _on_layer_changed(self, layer: Any) -> None:
        if self.worker is None and layer is not self._source:  # the bar and status showed another layer's run
            self.progress.reset()
            self.progress.setFormat("%p%")
            self.status.setText("idle")
        if layer is None:
            return
        try:
            choice = layer_axes_choice(layer, tuple(self.viewer.dims.axis_labels))
        except ValueError:  # not an image layer (LayerError), or no axes fit
            choice = None
        self.form.axes.setText(choice.axes if choice else "")
        self.form.axes_why.setText(choice.label() if choice else "")

    def _on_ready(self) -> None:
        self._on_device_changed()
        self.form.refresh_defaults()

    def _on_device_changed(self, _index: int = 0) -> None:
        if not ready():  # _on_ready fills the line in
            return
        from ..engine.device import describe, pick_device, resolve_precision

        try:
            dev = pick_device(self.form.device.currentText())
            text = describe(dev, resolve_precision(self.form.precision.currentText(), dev))
        except ValueError as exc:
            text = str(exc)
        self.device_label.setText(f"device: {text}")

    def _settings(self) -> tuple[TrainConfig, str, str | None]:
        cfg = self._last_config or self.form.config()
        layer, target = self.layer.layer(), self.target.layer() if cfg.algorithm == "n2n" else None
        src, tgt = file_of(layer, IMAGE_PLACEHOLDER), file_of(target, TARGET_PLACEHOLDER)
        return cfg, str(src), (tgt if target is not None else None)

    # --- starting ---------------------------------------------------------------------------

    def _request(self, layer: Any) -> Request:
        form, model = self.form, self.holder.model
        return Request(
            layer,
            self.target.layer(),
            form.config(),
            tuple(self.viewer.dims.axis_labels),
            model if form.continue_training.isChecked() else None,
            form.preview.isChecked(),
            form.uncertainty.isChecked(),
        )

    def start_training(self, layer: Any = None) -> Any:
        """Train on ``layer`` (default: the picked one); returns the worker, or None after a notification."""
        if self.worker is not None:
            return self.worker
        layer = layer if layer is not None else self.layer.layer()
        try:
            job, snap, self._preview = prepare(self._request(layer))
        except (ValueError, OSError) as exc:
            notify(str(exc), error=True)
            self.status.setText(f"failed: {exc}")
            return None
        self._source, self._snap, self._last_config = layer, snap, job.config
        self._shown = None if self._preview is None else PreviewLayer(self.viewer, snap, self)
        if self._preview is not None:
            self._preview.follow(self.viewer, layer)
        self._stops.clear()
        self.plot.clear()
        self.view.started()
        self._follow_view(True)
        self.worker = start_worker(
            train_then_denoise,
            job,
            self._stops,
            handlers={
                "yielded": self._on_progress,
                "returned": self._on_result,
                "errored": self._on_error,
                "finished": self._on_finished,
            },
        )
        self._set_running(True)
        return self.worker

    def _on_train_clicked(self) -> None:
        self.start_training()

    def _on_stop_clicked(self) -> None:
        """Stop training (the model so far is kept and applied) or, once training has ended, the denoising."""
        (self._stops.train if self.view.stop_pressed() == "train" else self._stops.predict).set()

    # --- while running ----------------------------------------------------------------------

    def _follow_view(self, on: bool) -> None:
        for ev in (self.viewer.dims.events.current_step, view_camera(self.viewer).events.center):
            if on:
                ev.connect(self._on_view_changed)
            else:
                ev.disconnect(self._on_view_changed)

    def _on_view_changed(self, _event: Any = None) -> None:
        if self._preview is not None and self._source in self.viewer.layers:
            self._preview.follow(self.viewer, self._source)

    def _on_progress(self, ev: TrainProgress | PredictProgress | Phase) -> None:
        if self._closed:
            return
        if isinstance(ev, Phase):
            self.view.entered(ev.name)
        elif isinstance(ev, TrainProgress):
            self._on_step(ev)
        elif ev.done:  # done=0 (prediction started): the Phase("denoising") before it said so
            self.view.tile(ev.done, ev.total, ev.eta)

    def _on_step(self, ev: TrainProgress) -> None:
        if getattr(ev, "phase", "training") != "training":  # the engine's step loop has ended
            self.view.training_ended(ev.step)
            return
        val = "" if ev.val_loss is None else f" · validation {ev.val_loss:.4g}"
        line = f"loss {ev.loss:.4g}{val} · {ev.steps_per_s:.1f} steps/s · {clock(ev.elapsed)}"
        self.view.step(ev.step, ev.total, ev.eta, line)
        self.plot.add(ev.step, ev.loss, ev.val_loss)
        pv, shown = self._preview, self._shown
        if ev.preview is not None and pv is not None and pv.used is not None and shown is not None:
            pv.arrived()
            shown.show(ev.preview, pv.used)

    # --- ending -----------------------------------------------------------------------------

    def _on_result(self, res: TrainResult) -> None:
        if self._closed:
            return
        self.holder.set(res.model)
        if res.config is not None:  # "auto" was decided in the worker: the settings export what ran
            self._last_config = res.config
        summary = res.model.summary or {}
        checked = check_status(res.model, res.check)
        done = f"done: {summary.get('steps', '?')} steps, ended by {summary.get('ended_by', '?')}"
        self.view.result(f"{done} · {checked}")
        if summary.get("message"):
            notify(str(summary["message"]))
        snap = self._snap
        if res.denoised is None or snap is None or self._source not in self.viewer.layers:
            return
        shown = self._shown
        # promoted: no layer removed or added
        if shown is None or shown.promote(res.denoised, res.limits, res.check) is None:
            self._adding = add_result_staged(self.viewer, snap, res.denoised, res.limits, self, decision=res.check)
        if res.uncertainty is not None:
            add_result(self.viewer, snap, res.uncertainty, "uncertainty", colormap="magma", visible=False)

    def _on_error(self, exc: Exception) -> None:
        # start_worker has already shown the message as an error notification.
        if not self._closed:
            self.status.setText(f"failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        if self._closed:
            return
        self.view.ended()
        self._follow_view(False)
        self._remove_preview()
        self._set_running(False)

    def _remove_preview(self) -> None:
        if self._shown is not None:
            self._shown.remove()
