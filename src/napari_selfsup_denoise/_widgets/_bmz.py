"""Export to the BioImage Model Zoo from the widget: a small dialog (name, authors, licence) and a worker."""

from __future__ import annotations

import getpass
import html
import importlib.util
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QWidget

from ..export import default_name
from ._worker import start_worker

ACCEPT_TEXT = "Export it anyway, marked suspect"
LICENCES = ("CC-BY-4.0", "CC0-1.0", "MIT", "BSD-3-Clause", "Apache-2.0")
PACKAGE_FILTER = "BioImage Model Zoo package (*.zip)"


class BmzDialog(QDialog):
    """Name, authors and licence of a package; :meth:`values` reads them.

    For a model whose own self-check failed with no safer output, the dialog says so and
    offers to export it anyway, marked suspect (unticked: the export is refused).
    """

    def __init__(self, model: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export to BioImage Model Zoo")
        self.name = QLineEdit(default_name(model))  # what export uses when no name is given
        self.name.setToolTip("5-128 letters, digits, spaces and _+-()")
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = ""
        self.authors = QLineEdit(user)
        self.authors.setToolTip("Comma-separated names")
        self.licence = QComboBox()
        self.licence.setEditable(True)  # any SPDX identifier
        self.licence.addItems(LICENCES)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Authors", self.authors)
        form.addRow("Licence", self.licence)
        self.accept_suspect: QCheckBox | None = None
        if _suspect(model):
            said = html.escape(f"{model.check.verdict}. What to try: {model.check.advice}.")
            warning = QLabel(f"<b>This model failed its self-check:</b> {said}")
            warning.setWordWrap(True)
            self.accept_suspect = QCheckBox(ACCEPT_TEXT)
            self.accept_suspect.setToolTip("Other tools run a package without any check; its README and "
                                           "description will say that the model is suspect")  # fmt: skip
            form.addRow(warning)
            form.addRow(self.accept_suspect)
        form.addRow(buttons)

    def values(self) -> dict[str, Any]:
        """``name``, ``authors`` (a list) and ``license`` as typed; ``accept_suspect`` for a suspect model."""
        authors = [a.strip() for a in self.authors.text().split(",") if a.strip()]
        values = {"name": self.name.text().strip(), "authors": authors or None, "license": self.licence.currentText()}
        if self.accept_suspect is not None:  # a suspect model: ``accept_suspect`` as ticked
            values["accept_suspect"] = self.accept_suspect.isChecked()
        return values


def _suspect(model: Any) -> bool:
    from ..export._trust import is_suspect

    return bool(is_suspect(model))


def _export(model: Any, path: str | Path, values: dict[str, Any]) -> Generator[str, None, Path]:
    """A generator, as the widgets' workers expect; it yields once before the work starts.

    A model whose own self-check failed is refused (an error notification) unless ``accept_suspect``.
    """
    from ..export import SuspectModelError, export_bmz
    from ..export._trust import refusal

    yield "exporting"
    try:
        return export_bmz(model, path, overwrite=True, **values)  # the file dialog asked before replacing a file
    except SuspectModelError:
        raise SuspectModelError(refusal(model, f"tick '{ACCEPT_TEXT}' in the export dialog")) from None


def start_export(model: Any, path: str | Path, values: dict[str, Any], notify: Callable[[str, bool], None]) -> Any:
    """Write the package in a worker (tracing and checks take seconds); errors become notifications, as elsewhere."""
    from ..export import INSTALL_HINT

    if importlib.util.find_spec("bioimageio") is None or importlib.util.find_spec("bioimageio.spec") is None:
        notify(f"exporting to the BioImage Model Zoo needs bioimageio.spec: {INSTALL_HINT}", True)
        return None
    suspect = values.get("accept_suspect") and _suspect(model)
    marked = " (marked suspect: the model failed its self-check)" if suspect else ""
    done = {"returned": lambda p: notify(f"BioImage Model Zoo package written to {p}{marked}", False)}
    return start_worker(_export, model, path, values, handlers=done)
