"""The current model: save / load with file dialogs, export it to the BioImage Model Zoo, export the settings."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..config import CLI_FLAGS, TrainConfig, to_dict
from ..io import check_output_path, model_output_path
from ._start import describe_start

MODEL_FILTER = "Denoiser model (*.sdmodel *.zip);;All files (*)"  # .zip: a BMZ package exported by this tool
IMAGE_PLACEHOLDER = "YOUR_IMAGE.tif"  # in exported commands, for a layer that was not opened from a file
TARGET_PLACEHOLDER = "YOUR_TARGET.tif"


class ModelHolder(QObject):
    """The model the widgets share (just trained or loaded); emits ``changed`` when it is replaced."""

    changed = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self.model: Any = None

    def set(self, model: Any) -> None:
        """Replace the current model."""
        self.model = model
        self.changed.emit(model)


def describe_model(model: Any) -> str:
    """About a model: algorithm, axes, steps, and the network and training values it ran with."""
    if model is None:
        return "no model yet: train one or load a file"
    s, c = model.summary or {}, model.config
    steps = f", {s['steps']} steps in {s.get('seconds', 0):.0f} s" if "steps" in s else ""
    z = f" x {c.patch_size_z} (Z)" if model.ndim == 3 else ""
    ran = (
        f"depth {c.depth}, {c.base_channels} base channels, batch {c.batch_size}, patch {c.patch_size}{z}, "
        f"learning rate {c.learning_rate:g}"
    )
    start = describe_start(s)  # where training started: the built-in prior, random weights or a file
    algorithm = s.get("algorithm_choice", model.algorithm)  # "blindspot (auto: 2D: ...)" when Automatic picked it
    return f"model: {algorithm}, axes {model.axes}, {model.channels} channel(s){steps}\n{ran}" + (
        f"\n{start}" if start else ""
    )


def cli_arguments(cfg: TrainConfig) -> list[str]:
    """``selfsup-denoise`` training flags that rebuild ``cfg`` exactly (``--set`` for everything else)."""
    default = to_dict(TrainConfig())
    args: list[str] = []
    for key, value in to_dict(cfg).items():
        if key in CLI_FLAGS and value is not None:
            args += [CLI_FLAGS[key], str(value)]
        elif key == "max_seconds":
            args += ["--max-seconds", "0" if value is None else f"{value:g}"]
        elif value != default[key]:
            args += ["--set", f"{key}={json.dumps(value)}"]
    return args


def headless_settings(
    cfg: TrainConfig, input_name: str = IMAGE_PLACEHOLDER, target: str | None = None
) -> dict[str, Any]:
    """The config and the ``selfsup-denoise run`` command (and Python call) that reproduce a run headless."""
    stem = Path(input_name).stem or "input"
    cmd = ["selfsup-denoise", "run", input_name, "-o", f"{stem}-denoised.tif", *cli_arguments(cfg)]
    if target:
        cmd += ["--target", target]
    cmd += ["--save-model", f"{stem}.sdmodel"]
    python = (
        "import json; from napari_selfsup_denoise import train; "
        "from napari_selfsup_denoise.config import from_dict; "
        "cfg = from_dict(json.load(open('settings.json'))['config']); model = train(image, cfg)"
    )
    doc: dict[str, Any] = {"command": shlex.join(cmd), "python": python, "config": to_dict(cfg)}
    missing = [p for p in (input_name, target) if p in (IMAGE_PLACEHOLDER, TARGET_PLACEHOLDER)]
    if missing:
        what = "is a placeholder for an image" if len(missing) == 1 else "are placeholders for images"
        doc["comment"] = (
            f"{' and '.join(missing)} in the command {what} not opened from a file (a napari sample or "
            "a computed layer): save the layer (File > Save Selected Layers...) and put its path there."
        )
    return doc


class ModelBox(QWidget):
    """Save / Load / Export settings buttons and a line describing the current model.

    Parameters
    ----------
    holder : ModelHolder
        The shared current model.
    notify : callable
        ``notify(message, error)`` shows a napari notification.
    settings : callable, optional
        Returns ``(TrainConfig, input path, target path or None)`` for
        "Export settings"; the button is hidden without it.
    """

    def __init__(
        self,
        holder: ModelHolder,
        notify: Callable[[str, bool], None],
        settings: Callable[[], tuple[TrainConfig, str, str | None]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.holder, self._notify, self._settings = holder, notify, settings
        self.label = QLabel(describe_model(None))
        self.label.setWordWrap(True)
        self.save_btn = QPushButton("Save model…")
        self.bmz_btn = QPushButton("Export to BioImage Model Zoo…")
        self.bmz_btn.setToolTip("A package that bioimageio.core, deepImageJ and ilastik can run (docs/sharing.md)")
        self.load_btn = QPushButton("Load model…")
        self.export_btn = QPushButton("Export settings…")
        self.export_btn.setVisible(settings is not None)
        self.export_btn.setToolTip("Write the config and the selfsup-denoise command that reproduce this run")
        rows = [QHBoxLayout(), QHBoxLayout()]  # two rows keep the dock narrow
        for i, b in enumerate((self.save_btn, self.bmz_btn, self.load_btn, self.export_btn)):
            rows[i // 2].addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        for row in rows:
            lay.addLayout(row)
        self.save_btn.clicked.connect(self._on_save_clicked)
        self.bmz_btn.clicked.connect(self._on_bmz_clicked)
        self.load_btn.clicked.connect(self._on_load_clicked)
        self.export_btn.clicked.connect(self._on_export_clicked)
        holder.changed.connect(self._on_model_changed)
        self._on_model_changed(holder.model)

    def _on_model_changed(self, model: Any) -> None:
        self.label.setText(describe_model(model))
        self.save_btn.setEnabled(model is not None)
        self.bmz_btn.setEnabled(model is not None)

    def _inputs(self) -> list[str]:
        """The files of the current run (never written: :func:`io.check_output_path`)."""
        if self._settings is None:
            return []
        _, src, target = self._settings()
        return [p for p in (src, target) if p and p not in (IMAGE_PLACEHOLDER, TARGET_PLACEHOLDER)]

    def save(self, path: str | Path) -> Path | None:
        """Save the current model to ``path`` (the dialog asked about replacing it); errors become notifications."""
        try:
            written = self.holder.model.save(model_output_path(path, self._inputs(), overwrite=True))
        except (OSError, ValueError) as exc:
            self._notify(f"could not save the model: {exc}", True)
            return None
        self._notify(f"model saved to {written}", False)
        return written

    def export_bmz(self, path: str | Path, **values: Any) -> Any:
        """Write the current model as a BMZ package in a worker (``values``: name, authors, license); the worker."""
        from ._bmz import start_export

        return start_export(self.holder.model, path, {**values, "inputs": self._inputs()}, self._notify)

    def load(self, path: str | Path) -> Any:
        """Load a model file and make it current; errors become notifications."""
        from ..engine.model import load_model

        try:
            model = load_model(path)
        except (OSError, ValueError) as exc:
            self._notify(str(exc), True)
            return None
        self.holder.set(model)
        self._notify(f"loaded {describe_model(model)}", False)
        return model

    def export(self, path: str | Path) -> Path | None:
        """Write the headless settings JSON to ``path``."""
        if self._settings is None:
            return None
        try:
            doc = headless_settings(*self._settings())
            check_output_path(path, self._inputs(), overwrite=True, what="settings file")
            Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except (OSError, ValueError) as exc:
            self._notify(f"could not export the settings: {exc}", True)
            return None
        extra = f" ({doc['comment']})" if "comment" in doc else ""
        self._notify(f"settings written to {path}{extra}", False)
        return Path(path)

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save model", "denoiser.sdmodel", MODEL_FILTER)
        if path:
            self.save(path)

    def _on_bmz_clicked(self) -> None:
        from ._bmz import PACKAGE_FILTER, BmzDialog

        dialog = BmzDialog(self.holder.model, self)
        if not dialog.exec_():
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export to BioImage Model Zoo", "denoiser.zip", PACKAGE_FILTER)
        if path:
            self.export_bmz(path, **dialog.values())

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", MODEL_FILTER)
        if path:
            self.load(path)

    def _on_export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export settings", "settings.json", "JSON (*.json)")
        if path:
            self.export(path)
