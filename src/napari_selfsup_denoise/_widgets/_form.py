"""The training settings form: algorithm, axes, budget and a collapsible Advanced section.

The Advanced section shows the values that will run: the fields a person has not
edited follow the picked algorithm, the axes (2D / 3D) and the device, through
``config.resolve_defaults``; an edited field keeps its value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)
from superqt import QCollapsible

from ..config import RESOLVED_FIELDS, ConfigError, TrainConfig, resolve_defaults
from ..defaults import AUTO, algorithm_choice
from ._start import StartField
from ._warm import ready

ALGORITHMS = {
    AUTO: "Automatic (picked for 2D / 3D, see below)",
    "n2v": "Noise2Void (N2V)",
    "n2v2": "N2V2 (fewer checkerboard artefacts)",
    "structn2v": "structN2V (noise correlated along an axis)",
    "blindspot": "Blind-spot (Laine et al., noise model)",
    "n2n": "Noise2Noise (needs a target layer)",
}
_LIMIT_STEPS = 10_000_000
# TrainConfig field -> form attribute, for the fields whose default depends on the algorithm.
_TUNED = {name: "net_depth" if name == "depth" else name for name in RESOLVED_FIELDS}


def device_type(name: str) -> str:
    """The kind of device (``cpu``, ``cuda``, ``mps``) that ``name`` picks; ``cpu`` when none fits."""
    from ..engine.device import pick_device

    try:
        return pick_device(name).type
    except ValueError:
        return "cpu"


def _spin(lo: float, hi: float, value: float, step: float = 1, decimals: int = 0) -> QSpinBox | QDoubleSpinBox:
    box: QSpinBox | QDoubleSpinBox = QDoubleSpinBox() if decimals else QSpinBox()
    if isinstance(box, QDoubleSpinBox):
        box.setDecimals(decimals)
    box.setRange(lo, hi)  # type: ignore[arg-type]
    box.setSingleStep(step)  # type: ignore[arg-type]
    box.setValue(value)  # type: ignore[arg-type]
    return box


def _combo(items: list[str], current: str) -> QComboBox:
    box = QComboBox()
    box.addItems(items)
    box.setCurrentText(current)
    return box


class TrainForm(QWidget):
    """Widgets for every :class:`TrainConfig` field a person may want to change.

    ``config()`` builds the validated config the same way the CLI does. ``current_model``
    returns the model "continue from the current model" would start from (or None).
    """

    def __init__(self, parent: QWidget | None = None, current_model: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self._current_model = current_model
        d = resolve_defaults(TrainConfig(), ndim=2)
        self._edited: set[str] = set()
        self._refreshing = False
        self.algorithm = QComboBox()
        for key, label in ALGORITHMS.items():
            self.algorithm.addItem(label, key)
        self.axes = QLineEdit()
        self.axes.setPlaceholderText("e.g. YX, ZYX, TYX, YXC")
        self.axes.setToolTip("One letter per dimension: S sample, T time, C channel, Z, Y, X. Z trains in 3D.")
        self.algorithm_why = QLabel("")  # what "Automatic" picks for the current axes, and why
        self.algorithm_why.setWordWrap(True)
        self.axes_why = QLabel("")  # where the axes came from: the file, the viewer, or a guess to check
        self.axes_why.setWordWrap(True)
        self.axes.textEdited.connect(lambda _text: self.axes_why.setText("typed"))
        self.budget = cast(QDoubleSpinBox, _spin(1, 1e7, 60, 10, 1))
        self.budget_unit = _combo(["seconds", "steps"], "seconds")
        self.preview = QCheckBox("live preview of the slice on screen")
        self.preview.setChecked(True)
        self.continue_training = QCheckBox("continue from the current model")
        self.uncertainty = QCheckBox("add an uncertainty layer (blind-spot)")
        self._build_advanced(d)
        self._layout_basic()
        self.algorithm.currentIndexChanged.connect(self._on_algorithm_changed)
        self.axes.textChanged.connect(self.refresh_defaults)
        self.device.currentIndexChanged.connect(self.refresh_defaults)
        for name, attr in _TUNED.items():
            getattr(self, attr).valueChanged.connect(lambda _v, name=name: self._on_tuned_edited(name))
        self.continue_training.toggled.connect(self._on_continue_toggled)
        self._on_algorithm_changed()

    def _on_continue_toggled(self, on: bool) -> None:
        """Continuing keeps the model's network: show its algorithm, depth and width, which are what will run."""
        model = self._current_model() if on and self._current_model is not None else None
        if model is not None:
            self.set_algorithm(model.config.algorithm)
            self.net_depth.setValue(model.config.depth)
            self.base_channels.setValue(model.config.base_channels)

    def _build_advanced(self, d: TrainConfig) -> None:
        self.patch_size = _spin(8, 1024, d.patch_size, 8)
        self.patch_size_z = _spin(4, 256, d.patch_size_z, 4)
        self.batch_size = _spin(1, 512, d.batch_size)
        self.net_depth = _spin(1, 5, d.depth)
        self.base_channels = _spin(4, 256, d.base_channels, 4)
        self.learning_rate = _spin(1e-5, 0.5, d.learning_rate, 1e-4, 5)
        self.val_fraction = _spin(0, 0.49, d.val_fraction, 0.05, 2)
        self.masked_fraction = _spin(0.001, 0.25, d.masked_fraction, 0.005, 3)
        self.struct_axis = _combo(["X", "Y", "Z", "YX"], d.struct_axis)  # YX: a cross (noise correlated along both)
        self.struct_span = _spin(3, 31, d.struct_span, 2)
        self.noise_model = QLineEdit(d.noise_model)
        self.noise_model.setToolTip("auto, gaussian, poisson-gaussian or known:SIGMA")
        self.augment = QCheckBox("rotations and flips")
        self.augment.setChecked(d.augment)
        self.device = _combo(["auto", "cpu", "cuda", "mps"], d.device)
        self.precision = _combo(["auto", "fp32", "bf16"], d.precision)
        self.seed = _spin(-1, 2**31 - 1, d.seed if d.seed is not None else -1)
        self.seed.setToolTip("-1: a different run every time")
        self.preview_every = _spin(0.5, 600, d.preview_every_s, 0.5, 1)
        self.start_from = StartField()  # the built-in prior (issue 11), random weights or a model file
        self.advanced = QCollapsible("Advanced")
        inner = QWidget()
        form = QFormLayout(inner)
        rows = [
            ("patch (Y, X)", self.patch_size),
            ("patch (Z)", self.patch_size_z),
            ("batch size", self.batch_size),
            ("U-Net depth", self.net_depth),
            ("base channels", self.base_channels),
            ("learning rate", self.learning_rate),
            ("validation share", self.val_fraction),
            ("masked share", self.masked_fraction),
            ("struct axis", self.struct_axis),
            ("struct span", self.struct_span),
            ("noise model", self.noise_model),
            ("start from", self.start_from),
            ("augment", self.augment),
            ("device", self.device),
            ("precision", self.precision),
            ("seed", self.seed),
            ("preview every (s)", self.preview_every),
        ]
        for label, w in rows:
            form.addRow(label, w)
        self.advanced.addWidget(inner)

    def _layout_basic(self) -> None:
        budget = QWidget()
        row = QHBoxLayout(budget)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.budget)
        row.addWidget(self.budget_unit)
        self.form = QFormLayout(self)
        self.form.setContentsMargins(0, 0, 0, 0)
        self.form.addRow("algorithm", self.algorithm)
        self.form.addRow("", self.algorithm_why)
        self.form.addRow("axes", self.axes)
        self.form.addRow("", self.axes_why)
        self.form.addRow("budget", budget)
        self.form.addRow(self.preview)
        # the uncertainty checkbox stays out of the form until it is calibrated (issue 10, item 9)
        self.form.addRow(self.continue_training)
        self.form.addRow(self.advanced)

    def insert_row(self, row: int, label: str, widget: QWidget) -> None:
        """Put an extra row (the layer pickers) into the form."""
        self.form.insertRow(row, QLabel(label), widget)

    def key(self) -> str:
        """The picked algorithm's engine name."""
        return str(self.algorithm.currentData())

    def set_algorithm(self, key: str) -> None:
        """Pick an algorithm by engine name."""
        self.algorithm.setCurrentIndex(self.algorithm.findData(key))

    def _on_algorithm_changed(self, _index: int = 0) -> None:
        key = self.key()
        for w in (self.struct_axis, self.struct_span):
            w.setEnabled(key == "structn2v")
        self.refresh_defaults()

    def _on_tuned_edited(self, name: str) -> None:
        if not self._refreshing:
            self._edited.add(name)
            if name == "batch_size":  # an unedited learning rate follows the batch (defaults.batch_scaled_lr)
                self.refresh_defaults()
            self._show_start()

    def _show_start(self, *_: Any) -> None:
        if not ready():  # the dock fills it in when the background imports are done (_warm.py)
            self.start_from.resolved.setText("→ checking the built-in prior…")
            return
        self.start_from.show_for(self.key(), self.ndim(), self.net_depth.value(), self.base_channels.value())

    def ndim(self) -> int:
        """Spatial dimensions the axes field asks for: 3 with a Z axis, else 2."""
        return 3 if "Z" in self.axes.text().upper() else 2

    def defaults(self) -> TrainConfig:
        """The config the algorithm, axes, device and the edited fields would run with."""
        try:
            base = TrainConfig(algorithm=self.key(), **self._tuned_options())
        except ConfigError:  # an edited value is out of range: show the algorithm's own defaults
            base = TrainConfig(algorithm=self.key())
        kind = device_type(self.device.currentText()) if ready() else "cpu"  # until torch is imported (_warm.py)
        return resolve_defaults(base, self.ndim(), kind)

    def refresh_defaults(self, *_: Any) -> None:
        """Show the current algorithm's defaults in every field the person has not edited."""
        d = self.defaults()
        self.uncertainty.setEnabled(d.algorithm == "blindspot")  # "Automatic" may pick it
        self.noise_model.setEnabled(d.algorithm == "blindspot")
        self.algorithm_why.setText(f"→ {algorithm_choice(self.key(), self.ndim())}" if self.key() == AUTO else "")
        self.algorithm_why.setVisible(self.key() == AUTO)
        self._refreshing = True
        try:
            for name, attr in _TUNED.items():
                if name not in self._edited:
                    getattr(self, attr).setValue(getattr(d, name))
        finally:
            self._refreshing = False
        self._show_start()

    def budget_options(self) -> dict[str, Any]:
        """``max_steps`` / ``max_seconds`` from the budget row."""
        if self.budget_unit.currentText() == "steps":
            return {"max_steps": max(1, int(self.budget.value())), "max_seconds": None}
        return {"max_steps": _LIMIT_STEPS, "max_seconds": float(self.budget.value())}

    def set_budget(self, value: float, unit: str) -> None:
        """Set the budget, e.g. ``(200, "steps")`` or ``(30, "seconds")``."""
        self.budget_unit.setCurrentText(unit)
        self.budget.setValue(value)

    def config(self) -> TrainConfig:
        """The validated config (raises ConfigError / AxesError with a plain message)."""
        seed = int(self.seed.value())
        return TrainConfig(
            algorithm=self.key(),
            axes=self.axes.text().strip() or None,
            **self._tuned_options(),
            val_fraction=float(self.val_fraction.value()),
            masked_fraction=float(self.masked_fraction.value()),
            struct_axis=self.struct_axis.currentText(),
            struct_span=int(self.struct_span.value()),
            noise_model=self.noise_model.text().strip() or "auto",
            start_from=self.start_from.value(),
            augment=self.augment.isChecked(),
            device=self.device.currentText(),
            precision=self.precision.currentText(),
            seed=None if seed < 0 else seed,
            preview_every_s=float(self.preview_every.value()),
            **self.budget_options(),
        )

    def _tuned_options(self) -> dict[str, Any]:
        """The per-algorithm fields the person edited; the others stay None for the resolver."""
        values = {name: getattr(self, attr).value() for name, attr in _TUNED.items() if name in self._edited}
        return {k: float(v) if k == "learning_rate" else int(v) for k, v in values.items()}

    def set_config(self, cfg: TrainConfig) -> None:
        """Show ``cfg`` (e.g. a loaded model's settings); values unlike the defaults count as edited."""
        self.set_algorithm(cfg.algorithm)
        self._edited.clear()
        self.refresh_defaults()
        d = self.defaults()
        for name, attr in _TUNED.items():
            value = getattr(cfg, name)
            if value is not None and value != getattr(d, name):
                getattr(self, attr).setValue(value)
        for name in ("val_fraction", "masked_fraction", "struct_span"):
            getattr(self, name).setValue(getattr(cfg, name))
        self.struct_axis.setCurrentText(cfg.struct_axis.upper())
        self.noise_model.setText(cfg.noise_model)
        self.start_from.set_value(cfg.start_from)
        self.augment.setChecked(cfg.augment)
        self.seed.setValue(-1 if cfg.seed is None else int(cfg.seed))
