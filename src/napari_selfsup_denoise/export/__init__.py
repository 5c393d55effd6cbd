"""BioImage Model Zoo packaging: export a trained model (reading our own packages back lives in engine/model_file).

Qt-free; needs ``bioimageio.spec`` (the ``[bmz]`` extra) for export only.
"""

from __future__ import annotations

from ._arch import ArchitectureError
from ._package import INSTALL_HINT, BmzUnavailableError, check_target, export_bmz
from ._readme import default_name
from ._tensors import ExportInputError
from ._trust import SuspectModelError

__all__ = [
    "export_bmz",
    "check_target",
    "default_name",
    "ArchitectureError",
    "BmzUnavailableError",
    "ExportInputError",
    "SuspectModelError",
    "INSTALL_HINT",
]
