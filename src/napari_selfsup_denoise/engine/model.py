"""A trained model: network + config + normalisation; one-file save/load without pickle.

The file is a safetensors file: the weights, plus a JSON document in the
safetensors header metadata (format version, algorithm, config, axes, channels,
normalisation, training summary, fitted noise parameters). Loading it never
runs code.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ..axes import AxesError, guess_axes, validate_axes
from ..config import ConfigError, PredictConfig, TrainConfig, from_dict, to_dict
from .data import Normalisation
from .events import drain
from .methods import Method, get_method

FORMAT = "napari-selfsup-denoise"
FORMAT_VERSION = 1
SUFFIX = ".sdmodel"


class ModelFileError(ValueError):
    """A model file is missing, corrupt, foreign or incompatible."""


class Model:
    """A trained denoiser.

    Attributes
    ----------
    net : torch.nn.Module
        The network (in eval mode after training).
    config : TrainConfig
        How it was trained.
    axes : str
        Axes of the training image.
    ndim, channels : int
        Spatial dimensions (2 or 3) and image channels.
    norm : Normalisation
        Per-channel normalisation fitted on the training image.
    summary : dict
        Training facts: steps, seconds, losses, fitted noise parameters.
    """

    def __init__(
        self,
        net: nn.Module,
        config: TrainConfig,
        axes: str,
        ndim: int,
        channels: int,
        norm: Normalisation,
        summary: dict[str, Any] | None = None,
        method: Method | None = None,
    ) -> None:
        self.net, self.config, self.axes = net, config, axes
        self.ndim, self.channels, self.norm = ndim, channels, norm
        self.summary = dict(summary or {})
        self.method = method or get_method(config)

    @property
    def algorithm(self) -> str:
        """The algorithm name."""
        return self.config.algorithm

    @property
    def margin(self) -> int:
        """Context per side that covers the receptive field."""
        return int(self.net.margin)  # type: ignore[arg-type]

    @property
    def multiple(self) -> int:
        """Window sizes must be multiples of this."""
        return int(self.net.multiple)  # type: ignore[arg-type]

    def resolve_axes(self, image: Any, axes: str | None) -> str:
        """Axes for ``image``: given, the training axes if they fit, or a guess; checked against the model."""
        nd = len(image.shape)
        if axes is None:
            axes = self.axes if len(self.axes) == nd else guess_axes(image.shape)
        axes = validate_axes(axes, nd)
        if ("Z" in axes) != (self.ndim == 3):
            kind = "3D (needs a Z axis)" if self.ndim == 3 else "2D (no Z axis; pass Z as T to denoise slices)"
            raise AxesError(f"this model is {kind}, but the image axes are {axes!r}; pass axes= explicitly")
        return axes

    def check_channels(self, channels: int) -> None:
        """Raise if the image has a different number of channels than the model."""
        if channels != self.channels:
            raise ModelFileError(
                f"the model was trained on {self.channels} channel(s) but the image has {channels}; "
                "use a model trained on images with the same channels (or fix the C axis)"
            )

    def denoise(
        self,
        image: Any,
        axes: str | None = None,
        *,
        tile: int | None = None,
        tta: bool = False,
        device: str = "auto",
        precision: str = "auto",
        output: str = "posterior",
        uncertainty: bool = False,
        stop: threading.Event | None = None,
    ) -> Any:
        """Denoise ``image``: same shape, float32, original intensity scale.

        With ``uncertainty=True`` (blind-spot models) returns ``(denoised, std)``.
        """
        from .predict import predict

        pcfg = PredictConfig(tile, tta, device, precision, output, uncertainty)
        return drain(predict(self, image, pcfg, axes=axes, stop=stop))

    def metadata(self) -> dict[str, Any]:
        """The JSON document stored in the model file."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "algorithm": self.algorithm,
            "config": to_dict(self.config),
            "axes": self.axes,
            "ndim": self.ndim,
            "channels": self.channels,
            "normalisation": self.norm.to_dict(),
            "summary": self.summary,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to one file atomically; returns the path written."""
        path = Path(path)
        if path.suffix == "":
            path = path.with_suffix(SUFFIX)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        meta = {"napari_selfsup_denoise": json.dumps(self.metadata())}
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
            raw = (fh.metadata() or {}).get("napari_selfsup_denoise")
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


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load a model file written by :meth:`Model.save`.

    Raises
    ------
    ModelFileError
        If the file is missing, corrupt, truncated, a pickle, or from another tool.
    """
    meta = read_metadata(path)
    try:
        cfg = from_dict(meta["config"])
        method = get_method(cfg)
        net = method.build(int(meta["ndim"]), int(meta["channels"]))
        with safe_open(str(path), framework="pt") as fh:
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        net.load_state_dict(state, strict=True)
    except (KeyError, ConfigError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path} does not hold a usable model ({exc})") from exc
    net.eval()
    if int(meta["ndim"]) == 2:  # as in training: same kernels, bit-identical output
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    norm = Normalisation.from_dict(meta["normalisation"])
    return Model(
        net,
        cfg,
        meta["axes"],
        int(meta["ndim"]),
        int(meta["channels"]),
        norm,
        meta.get("summary"),
        method,
    )
