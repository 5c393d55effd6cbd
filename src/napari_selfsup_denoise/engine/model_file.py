"""The model file: one safetensors file, weights plus a JSON document; reading it never runs code.

The JSON document sits in the safetensors header metadata (format version,
algorithm, config, axes, channels, normalisation, training summary, fitted noise
parameters). Pickles and PyTorch checkpoints are refused before they are opened.
This module knows bytes only; :func:`.model.load_model` builds a Model from them.

A BioImage Model Zoo package that napari-selfsup-denoise exported carries its
``.sdmodel`` file inside and names it in the description's ``config``; such a
zip is read by opening the zip, parsing the YAML description with a safe loader
and taking that one file out. No code from a package (its architecture file, its
TorchScript or pickled weights) is ever run; packages other tools made are refused.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

FORMAT = "napari-selfsup-denoise"
# 2: the file may hold a crop of the training image (SAMPLE_KEY), which version 1 readers would take for a weight.
FORMAT_VERSION = 2
SAMPLE_KEY = "_training_sample"
SUFFIX = ".sdmodel"
_KEY = "napari_selfsup_denoise"
PACKAGE_KEY = _KEY  # where a BMZ package we exported names its .sdmodel: config[PACKAGE_KEY]["model"]
_DESCRIPTIONS = ("rdf.yaml", "bioimageio.yaml")


class ModelFileError(ValueError):
    """A model file is missing, corrupt, foreign or incompatible."""


def model_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``.sdmodel`` added when it has no suffix."""
    p = Path(path)
    return p.with_suffix(SUFFIX) if p.suffix == "" else p


def save(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` and the JSON ``metadata`` to one file atomically; returns the path written.

    A path without a suffix gets ``.sdmodel``.
    """
    path = model_path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {_KEY: json.dumps(metadata)}
    path.parent.mkdir(parents=True, exist_ok=True)
    # not mkstemp: its 0600 would lock colleagues out; 0666 minus the umask, like any other output
    tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as fh:
            fh.write(save_bytes(tensors, metadata=meta))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _sniff(path: Path) -> None:
    with path.open("rb") as fh:
        head = fh.read(16)
    if len(head) >= 10 and head[8:9] == b"{":
        return  # a safetensors header: 8 bytes of length (any value, 0x80 included), then JSON
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise ModelFileError(
            f"{path} looks like a pickle / PyTorch checkpoint; such files can run code when "
            "loaded and are refused. Use a model saved by napari-selfsup-denoise (.sdmodel)"
        )
    raise ModelFileError(f"{path} is not a napari-selfsup-denoise model file (no safetensors header)")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON document of a model file (or of the one inside a package we exported), checked."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    if zipfile.is_zipfile(path):
        with unpacked(path) as inner:
            return read_metadata(inner)
    _sniff(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = (fh.metadata() or {}).get(_KEY)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{path} is corrupt or truncated ({exc})") from exc
    if raw is None:
        raise ModelFileError(f"{path} is a safetensors file but not a napari-selfsup-denoise model")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise ModelFileError(
            f"{path} has format {meta.get('format')!r} version {meta.get('format_version')}; "
            f"this version reads {FORMAT!r} up to version {FORMAT_VERSION} (upgrade the plugin)"
        )
    return meta


def read_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a model file (call :func:`read_metadata` first: it checks the file)."""
    with safe_open(str(path), framework="pt") as fh:
        return {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118


def _package_description(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    import yaml

    name = next((n for n in _DESCRIPTIONS if n in zf.namelist()), None)
    if name is None:
        raise ModelFileError(
            f"{path} is a zip file but not a BioImage Model Zoo package (no rdf.yaml); PyTorch checkpoints are zips "
            "too and can run code when loaded, so they are refused. Use a .sdmodel file or a package exported by "
            "napari-selfsup-denoise"
        )
    try:
        doc = yaml.safe_load(zf.read(name))
    except yaml.YAMLError as exc:
        raise ModelFileError(f"{path}: {name} is not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ModelFileError(f"{path}: {name} is not a model description")
    return doc


def package_member(path: str | os.PathLike[str]) -> bytes:
    """The ``.sdmodel`` file inside a BioImage Model Zoo package that napari-selfsup-denoise exported.

    Raises
    ------
    ModelFileError
        For zips that are not BMZ packages, packages from other tools and damaged packages.
    """
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        doc = _package_description(zf, path)
        ours = (doc.get("config") or {}).get(PACKAGE_KEY)
        if not isinstance(ours, dict) or ours.get("format") != FORMAT:
            weights = ", ".join(sorted(doc.get("weights") or {})) or "none listed"
            raise ModelFileError(
                f"{path} is a BioImage Model Zoo package made by another tool ({doc.get('name', 'unnamed')!r}, "
                f"weights: {weights}). napari-selfsup-denoise loads only the packages it exported itself (they "
                "carry a .sdmodel inside) and never runs code from a package; run this one with bioimageio.core, "
                "deepImageJ or the tool that made it"
            )
        member = ours.get("model")
        if not isinstance(member, str) or member not in zf.namelist():
            raise ModelFileError(f"{path} was exported by napari-selfsup-denoise but lacks its model file {member!r}")
        return zf.read(member)


@contextmanager
def unpacked(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary ``.sdmodel`` copy of the model inside a package we exported (removed on exit)."""
    data = package_member(path)
    fd, tmp = tempfile.mkstemp(prefix="package-", suffix=SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        yield Path(tmp)
    finally:
        os.unlink(tmp)
