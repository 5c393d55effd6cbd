"""What the train dock shows through a run: training, Stop, the checks after training, denoising.

Stop changes the dock at once: the button says "Stopping…" and is disabled, and
the bar and the status line say what is being finished. The work after training
has a line per phase (the model's checks, the check on this image, the first
tile), so a Stop in 3D, seconds of work on a CPU, never looks frozen (issue 10,
item 13). The bar is never put in Qt's busy mode: its animation repaints the
whole napari window many times a second, each repaint a composite of the OpenGL
canvas (tens of ms of main-thread CPU under a software renderer). For the same
reason the bar's value is set without QProgressBar's synchronous repaint
(:func:`set_value`). Nothing here touches the viewer.
"""

from __future__ import annotations

from typing import Any

from ._plot import clock

STOP, STOP_DENOISING, STOPPING = "Stop", "Stop denoising", "Stopping…"
# phase -> (status line, text in the bar)
TEXTS = {
    "stopping": (
        "stopping: the training step in progress ends, then the model so far is validated and "
        "self-checked on held-out pixels, then this image is denoised…",
        "stopping…",
    ),
    "checking": (
        "training ended at step {step}: validating and self-checking the model on held-out pixels…",
        "checking the model…",
    ),
    "image-check": ("self-checking the model on this image…", "checking the model on this image…"),
    "denoising": ("denoising this image…", "denoising: first tile…"),
    "stopping-denoise": (
        "stopping: the denoising pass in progress ends; the model is kept, no layer is added…",
        "stopping…",
    ),
}


def set_value(bar: Any, value: int) -> None:
    """Set ``bar``'s value, painted with the rest of this event-loop pass.

    ``QProgressBar.setValue`` repaints at once, and every repaint in napari's
    window composites its OpenGL canvas: one per training step or tile, even when
    several events arrive together. With updates off during the call, the change
    is left to one ordinary (coalesced) update.
    """
    bar.setUpdatesEnabled(False)
    try:
        bar.setValue(value)
    finally:
        bar.setUpdatesEnabled(True)  # schedules an update()


class RunView:
    """The progress bar, status line and Stop button of the train dock, phase by phase.

    ``phase`` is ``"idle"``, ``"train"``, ``"stopping"`` (Stop pressed while training),
    ``"checking"`` (the step loop has ended), ``"image-check"``, ``"denoising"``,
    ``"predict"`` (tiles coming) or ``"stopping-denoise"``.

    Parameters
    ----------
    progress : QProgressBar
        The run's bar.
    status : QLabel
        The status line.
    stop_btn : QPushButton
        The Stop button.
    """

    def __init__(self, progress: Any, status: Any, stop_btn: Any) -> None:
        self.progress, self.status, self.stop_btn = progress, status, stop_btn
        self.phase = "idle"

    def _show(self, phase: str, **fields: Any) -> None:
        line, bar = TEXTS[phase]
        self.phase = phase
        self.status.setText(line.format(**fields))
        self.progress.setFormat(bar)  # the bar keeps its value: no busy mode (see the module's docstring)

    def _stop_button(self, text: str, enabled: bool) -> None:
        self.stop_btn.setText(text)
        self.stop_btn.setEnabled(enabled)

    def started(self) -> None:
        """A run starts: training."""
        self.phase = "train"
        self.status.setText("starting…")
        self.progress.setRange(0, 100)
        set_value(self.progress, 0)
        self.progress.setFormat("starting…")
        self._stop_button(STOP, True)

    def stop_pressed(self) -> str:
        """Show Stop at once; returns what it stops: ``"train"`` while training, else ``"predict"``."""
        training = self.phase == "train"
        self._show("stopping" if training else "stopping-denoise")
        self._stop_button(STOPPING, False)
        return "train" if training else "predict"

    def step(self, step: int, total: int, eta: float, line: str) -> None:
        """A training step ended (ignored once Stop was pressed: the line keeps saying what is finished)."""
        if self.phase != "train":
            return
        self.progress.setRange(0, max(1, total))
        self.progress.setFormat(f"step {step}/{total} · ETA {clock(eta)}")
        set_value(self.progress, step)
        self.status.setText(line)

    def training_ended(self, step: int) -> None:
        """The step loop ended; the model is validated and self-checked now."""
        if self.phase in ("train", "stopping"):
            self._show("checking", step=step)
            self._stop_button(STOP_DENOISING, True)

    def entered(self, name: str) -> None:
        """The worker entered phase ``name`` after training (``"image-check"`` or ``"denoising"``)."""
        if self.phase != "stopping-denoise":
            self._show(name)
            self._stop_button(STOP_DENOISING, True)

    def tile(self, done: int, total: int, eta: float) -> None:
        """A tile of the result was denoised."""
        if self.phase == "stopping-denoise":
            return
        self.phase = "predict"
        self.progress.setRange(0, max(1, total))
        self.progress.setFormat(f"denoising: tile {done}/{total} · ETA {clock(eta)}")
        set_value(self.progress, done)

    def result(self, line: str) -> None:
        """The run returned its model: ``line`` in the status line."""
        self.progress.setFormat("done")
        self.status.setText(line)

    def ended(self) -> None:
        """The worker finished (returned, failed or stopped): Stop off."""
        self.phase = "idle"
        self._stop_button(STOP, False)
