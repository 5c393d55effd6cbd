"""The model file: one safetensors file, weights plus a JSON document; reading it never runs code.

The JSON document sits in the safetensors header metadata (format version,
algorithm, config, axes, channels, normalisation, training summary, fitted noise
parameters). Pickles and PyTorch checkpoints are refused before they are opened.
This module knows bytes only; :func:`.model.load_model` builds a Model from them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

FORMAT = "napari-selfsup-denoise"
FORMAT_VERSION = 1
SUFFIX = ".sdmodel"
_KEY = "napari_selfsup_denoise"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, foreign or incompatible."""


def save(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` and the JSON ``metadata`` to one file atomically; returns the path written.

    A path without a suffix gets ``.sdmodel``.
    """
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(SUFFIX)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta = {_KEY: json.dumps(metadata)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _sniff(path: Path) -> None:
    head = path.read_bytes()[:16] if path.stat().st_size < 16 else path.open("rb").read(16)
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise ModelFileError(
            f"{path} looks like a pickle / PyTorch checkpoint; such files can run code when "
            "loaded and are refused. Use a model saved by napari-selfsup-denoise (.sdmodel)"
        )
    if len(head) < 10 or head[8:9] != b"{":
        raise ModelFileError(f"{path} is not a napari-selfsup-denoise model file (no safetensors header)")


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON document of a model file, checked for format and version."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
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
