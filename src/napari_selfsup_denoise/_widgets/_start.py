"""The Advanced field "start from": the built-in prior, random weights or a model file, and what that resolves to."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QComboBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from ..config import TrainConfig

CHOICES = {"builtin": "built-in prior (fine-tune it)", "random": "random weights", "file": "a model file…"}
ABOUT = (
    "Blind-spot training starts from the built-in prior: a network pre-trained on generated images (dead "
    "leaves and microscopy-like scenes, no real data), fine-tuned on your image. 'random weights' switches it "
    "off; 'a model file' fine-tunes a .sdmodel of the same algorithm and network shape."
)


class StartField(QWidget):
    """Where training starts (``TrainConfig.start_from``) and, below it, what that will be for the current settings."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.choice = QComboBox()
        for key, label in CHOICES.items():
            self.choice.addItem(label, key)
        self.choice.setToolTip(ABOUT)
        self.path = QLineEdit()
        self.path.setPlaceholderText("path of a .sdmodel file")
        self.resolved = QLabel("")
        self.resolved.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for w in (self.choice, self.path, self.resolved):
            lay.addWidget(w)
        self.choice.currentIndexChanged.connect(self._on_choice_changed)
        self._on_choice_changed()

    def _on_choice_changed(self, _index: int = 0) -> None:
        self.path.setVisible(self.choice.currentData() == "file")

    def value(self) -> str:
        """``builtin``, ``random`` or the path typed (``builtin`` while the path is empty)."""
        key = str(self.choice.currentData())
        if key == "file":
            return self.path.text().strip() or "builtin"
        return key

    def set_value(self, spec: str) -> None:
        """Show ``spec`` (a config's ``start_from``)."""
        key = spec if spec in ("builtin", "random") else "file"
        self.choice.setCurrentIndex(self.choice.findData(key))
        self.path.setText("" if key != "file" else spec)

    def show_for(self, algorithm: str, ndim: int, depth: int, base_channels: int) -> str:
        """Say what training with these settings would start from (one channel assumed); returns the text."""
        from ..prior import resolve_start

        axes, shape = ("ZYX", (32, 64, 64)) if ndim == 3 else ("YX", (64, 64))
        try:
            cfg = TrainConfig(algorithm=algorithm, axes=axes, depth=depth, base_channels=base_channels,
                              start_from=self.value(), device="cpu")  # fmt: skip
            text = str(resolve_start(cfg, shape).source["detail"])
        except (ValueError, OSError) as exc:
            text = f"cannot start from it: {exc}"
        self.resolved.setText(f"→ {text}")
        return text


def describe_start(summary: dict[str, Any]) -> str:
    """A model's start for its one-line description (empty for model files older than the prior)."""
    start = summary.get("start") or {}
    return f"start: {start['detail']}" if start.get("detail") else ""
