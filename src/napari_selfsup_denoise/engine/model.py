"""A trained model: network + config + normalisation; save and load through :mod:`.model_file`."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..axes import AxesError, guess_axes, validate_axes
from ..config import ConfigError, PredictConfig, TrainConfig, from_dict, to_dict
from .data import Normalisation
from .events import drain
from .methods import Method, get_method
from .model_file import FORMAT, FORMAT_VERSION, ModelFileError, read_metadata, read_weights
from .model_file import save as save_file


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
        return save_file(path, self.net.state_dict(), self.metadata())


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
        net.load_state_dict(read_weights(path), strict=True)
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
