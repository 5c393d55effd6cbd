"""Recognise a BioImage Model Zoo package that napari-selfsup-denoise exported, and take our model out of it.

Such a package carries the original ``.sdmodel`` (safetensors + JSON) as an
attachment and names it in the description's ``config``. Reading it opens the
zip, parses the YAML description with a safe loader and reads that one file:
no code from the package (its architecture file, its TorchScript or pickled
weights) is ever run. Packages other tools made are refused.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")
CONFIG_KEY = "napari_selfsup_denoise"


class PackageError(ValueError):
    """The zip is not a package we can load (foreign, incomplete or not a BMZ package)."""


def is_zip(path: Path) -> bool:
    """Whether ``path`` is a zip file (BMZ packages and PyTorch checkpoints both are)."""
    return zipfile.is_zipfile(path)


def _description(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    import yaml

    name = next((n for n in DESCRIPTIONS if n in zf.namelist()), None)
    if name is None:
        raise PackageError(
            f"{path} is a zip file but not a BioImage Model Zoo package (no rdf.yaml); PyTorch checkpoints are zips "
            "too and can run code when loaded, so they are refused. Use a .sdmodel file or a package exported by "
            "napari-selfsup-denoise"
        )
    doc = yaml.safe_load(zf.read(name))
    if not isinstance(doc, dict):
        raise PackageError(f"{path}: {name} is not a model description")
    return doc


def sdmodel_bytes(path: str | Path, fmt: str) -> bytes:
    """The ``.sdmodel`` file inside a package we exported (``fmt`` is our format name).

    Raises
    ------
    PackageError
        For zips that are not BMZ packages, packages from other tools and damaged packages.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        doc = _description(zf, path)
        ours = (doc.get("config") or {}).get(CONFIG_KEY)
        if not isinstance(ours, dict) or ours.get("format") != fmt:
            weights = ", ".join(sorted(doc.get("weights") or {})) or "none listed"
            raise PackageError(
                f"{path} is a BioImage Model Zoo package made by another tool ({doc.get('name', 'unnamed')!r}, "
                f"weights: {weights}). napari-selfsup-denoise loads only the packages it exported itself (they "
                "carry a .sdmodel inside) and never runs code from a package; run this one with bioimageio.core, "
                "deepImageJ or the tool that made it"
            )
        member = ours.get("model")
        if not isinstance(member, str) or member not in zf.namelist():
            raise PackageError(
                f"{path} was exported by napari-selfsup-denoise but its model file {member!r} is missing"
            )
        return zf.read(member)
