"""BioImage Model Zoo packaging: export a trained model, and recognise packages we exported.

Qt-free; needs ``bioimageio.spec`` (the ``[bmz]`` extra) for export only.
"""

from __future__ import annotations

from ._arch import ArchitectureError
from ._package import INSTALL_HINT, BmzUnavailableError, check_target, export_bmz
from ._tensors import ExportInputError

__all__ = ["export_bmz", "check_target", "ArchitectureError", "BmzUnavailableError", "ExportInputError", "INSTALL_HINT"]
