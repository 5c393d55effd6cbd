"""The **Denoise now** button: the built-in prior with a noise model fitted to the layer, no training."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

from qtpy.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from ..config import PredictConfig
from ._axes import layer_axes
from ._layers import LayerError, Snapshot, allocate_output, snapshot
from ._phases import TEXTS
from ._preview_layer import add_result_staged
from ._staged import StagedAdd
from ._warm import warmed, when_ready
from ._worker import Phase, check_status, checked_predict, notify, start_worker

LABEL = "Denoise now (built-in prior, no training)"
ABOUT = (
    "Denoise the picked layer at once with the built-in prior: a blind-spot network pre-trained on generated "
    "images (no microscopy data), with a noise model fitted to this layer. Seconds, no training; "
    "training (Train) usually does better."
)


def zero_shot(data: Any, axes: str, out: Any, stop: threading.Event) -> Generator[Any, None, Any]:
    """Worker: fit the zero-shot model to ``data``, then the checked prediction (yields PredictProgress)."""
    from ..prior import zero_shot_model

    model = zero_shot_model(data, axes)
    res = yield from checked_predict(model, data, PredictConfig(), model.axes, stop=stop, out=out)
    return model, res


class DenoiseNow(QWidget):
    """A button and a status line: zero-shot denoising of the layer the train dock has picked.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (the result is added to it).
    layer : callable
        Returns the picked layer (or None).
    axes : callable
        Returns the axes to use (or None to guess them).
    """

    def __init__(
        self, viewer: Any, layer: Callable[[], Any], axes: Callable[[], str | None], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.viewer, self._layer, self._axes = viewer, layer, axes
        self.worker: Any = None
        self._adding: StagedAdd | None = None  # the result layer, added one step per turn
        self._stop = threading.Event()
        self.button = QPushButton(LABEL)
        self.button.setToolTip(ABOUT)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.button)
        lay.addWidget(self.status)
        self.button.clicked.connect(self._on_clicked)
        self._on_ready()
        when_ready(self, self._on_ready, test=warmed)  # clicked before, it would import torch on the main thread

    def _on_ready(self) -> None:
        self.button.setEnabled(self.worker is None and warmed())
        self.button.setText(LABEL if warmed() else f"{LABEL} (loading…)")

    def is_idle(self) -> bool:
        """True when no denoising runs and the result layer is in place."""
        return self.worker is None and not (self._adding is not None and self._adding.adding)

    def _on_clicked(self) -> None:
        self.run()

    def run(self, layer: Any = None) -> Any:
        """Denoise ``layer`` (default: the picked one) in a worker; returns it, or None after a notification."""
        if self.worker is not None:
            return self.worker
        layer = layer if layer is not None else self._layer()
        try:
            if layer is None:
                raise LayerError("add or pick an image layer to denoise")
            snap = snapshot(layer, copy=False)
            axes = self._axes() or layer_axes(layer, tuple(self.viewer.dims.axis_labels))
            out = allocate_output(snap, axes, None)[0]
        except (ValueError, OSError) as exc:
            notify(str(exc), error=True)
            self.status.setText(f"failed: {exc}")
            return None
        self._stop.clear()
        self.status.setText("fitting the noise model…")
        self.button.setEnabled(False)
        self.worker = start_worker(zero_shot, snap.data, axes, out, self._stop, handlers={
            "yielded": self._on_progress,
            "returned": lambda res: self._on_done(snap, res),
            "errored": self._on_error,
            "finished": self._on_finished,
        })  # fmt: skip
        return self.worker

    def _on_progress(self, ev: Any) -> None:
        text = TEXTS[ev.name][0] if isinstance(ev, Phase) else f"denoising: tile {ev.done}/{ev.total}"
        self.status.setText(text)

    def _on_done(self, snap: Snapshot, res: Any) -> None:
        model, res = res
        if self._stop.is_set():
            return
        noise = {k: v for k, v in (model.summary or {}).items() if k.startswith("noise_")}
        fitted = ", ".join(f"{k[6:]} {v:.3g}" for k, v in noise.items() if isinstance(v, float))
        self.status.setText(f"zero-shot (noise {fitted}) · {check_status(model, res.decision)}")
        self._adding = add_result_staged(
            self.viewer, snap, res.out, res.limits, self, "denoised (zero-shot)", res.decision
        )

    def _on_error(self, exc: Exception) -> None:
        self.status.setText(f"failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.button.setEnabled(True)

    def teardown(self) -> None:
        """Stop a running denoising (the widget closes)."""
        self._stop.set()
        if self.worker is not None:
            self.worker.quit()
        if self._adding is not None:  # no step of adding the result runs after the dock has gone
            self._adding.settle()
