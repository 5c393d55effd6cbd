"""A trained model: network + config + normalisation; save and load through :mod:`.model_file`."""

from __future__ import annotations

import os
import threading
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..axes import AxesError, choose_axes, validate_axes
from ..config import (
    UNCERTAINTY_REMOVED,
    ConfigError,
    PredictConfig,
    ResolvedConfig,
    from_dict,
    resolve_defaults,
    to_dict,
)
from .checks import Decision, SelfCheck, SuspectResultWarning, decide
from .data import Normalisation
from .events import drain
from .methods import Method, get_method
from .model_file import FORMAT, FORMAT_VERSION, SAMPLE_KEY, ModelFileError, read_metadata, read_weights, unpacked
from .model_file import save as save_file


class Model:
    """A trained denoiser.

    Attributes
    ----------
    net : torch.nn.Module
        The network (in eval mode after training).
    config : ResolvedConfig
        How it was trained, every default filled in.
    axes : str
        Axes of the training image.
    ndim, channels : int
        Spatial dimensions (2 or 3) and image channels.
    norm : Normalisation
        Per-channel normalisation fitted on the training image.
    summary : dict
        Training facts: steps, seconds, losses, fitted noise parameters, the self-check.
    sample : numpy.ndarray or None
        A centred crop ``(C, [Z,] Y, X)`` of the training image (float32, its
        intensity units), kept for the test tensors of a BioImage Model Zoo export.
    last_check : Decision or None
        The self-checks of the last :meth:`denoise` call, and the output it returned.
    """

    def __init__(
        self,
        net: nn.Module,
        config: ResolvedConfig,
        axes: str,
        ndim: int,
        channels: int,
        norm: Normalisation,
        summary: dict[str, Any] | None = None,
        method: Method | None = None,
        sample: np.ndarray | None = None,
    ) -> None:
        self.net, self.config, self.axes = net, config, axes
        self.ndim, self.channels, self.norm = ndim, channels, norm
        self.summary = dict(summary or {})
        self.last_check: Decision | None = None
        self.method = method or get_method(config)
        self.sample = sample

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

    def resolve_axes(self, shape: tuple[int, ...], axes: str | None) -> str:
        """Axes for an image of ``shape``: given, the training axes if they fit, or a guess; checked."""
        nd = len(shape)
        if axes is None:  # the training axes when they fit, else a guess (a 2D model reads a guessed Z as T)
            axes = choose_axes(tuple(shape), model_axes=self.axes).axes
        axes = validate_axes(axes, nd)
        if ("Z" in axes) != (self.ndim == 3):
            kind = "3D (needs a Z axis)" if self.ndim == 3 else "2D (no Z axis; pass Z as T to denoise slices)"
            raise AxesError(f"this model is {kind}, but the image axes are {axes!r}; "
                            "give the axes explicitly (--axes on the command line, axes= in Python)")  # fmt: skip
        return axes

    def check_channels(self, channels: int) -> None:
        """Raise if the image has a different number of channels than the model."""
        if channels != self.channels:
            raise ModelFileError(
                f"the model was trained on {self.channels} channel(s) but the image has {channels}; "
                "use a model trained on images with the same channels (or fix the C axis)"
            )

    @property
    def check(self) -> SelfCheck | None:
        """The self-check made at the end of training (None for model files older than self-checks)."""
        stored = self.summary.get("self_check")
        return SelfCheck.from_dict(stored) if stored else None

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
        check: bool = True,
    ) -> Any:
        """Denoise ``image``: same shape, float32, original intensity scale.

        ``uncertainty=True`` raises a ConfigError: the standard deviation is removed
        until it is calibrated (issue 10, item 9).
        With ``check`` (the default) the model's self-check and a check on this
        image run first (:func:`.checks.decide`, kept in :attr:`last_check`): a
        failure is reported by a :class:`~.checks.SuspectResultWarning`, and the
        prior mean is returned when the posterior is the suspect part.
        """
        from .predict import predict

        if uncertainty:
            raise ConfigError(UNCERTAINTY_REMOVED)
        if check:
            self.last_check = decide(self, image, axes, output)
            for msg in self.last_check.messages():
                warnings.warn(msg, SuspectResultWarning, stacklevel=2)
            output = self.last_check.output
        pcfg = PredictConfig(
            tile=tile, tta=tta, device=device, precision=precision, output=output, uncertainty=uncertainty
        )
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
        tensors = dict(self.net.state_dict())
        if self.sample is not None:
            tensors[SAMPLE_KEY] = torch.from_numpy(np.ascontiguousarray(self.sample, dtype=np.float32))
        return save_file(path, tensors, self.metadata())


def load_model(path: str | os.PathLike[str]) -> Model:
    """Load a model file written by :meth:`Model.save`, or a BMZ package written by ``export.export_bmz``.

    Raises
    ------
    ModelFileError
        If the file is missing, corrupt, truncated, a pickle, or from another tool.
    """
    if Path(path).is_file() and zipfile.is_zipfile(path):
        with unpacked(path) as inner:
            return load_model(inner)
    meta = read_metadata(path)
    try:
        cfg = resolve_defaults(from_dict(meta["config"]), int(meta["ndim"]))
        method = get_method(cfg)
        net = method.build(int(meta["ndim"]), int(meta["channels"]))
        weights = read_weights(path)
        sample = weights.pop(SAMPLE_KEY, None)
        net.load_state_dict(weights, strict=True)
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
        None if sample is None else sample.numpy(),
    )


def training_sample(canon: Any, ndim: int, edge: int) -> np.ndarray:
    """A centred crop ``(C, [Z,] Y, X)`` of a canonical image, at most ``edge`` pixels per spatial axis, float32."""
    s, t = canon.shape[0] // 2, canon.shape[1] // 2
    window = [slice((n - min(n, edge)) // 2, (n - min(n, edge)) // 2 + min(n, edge)) for n in canon.shape[3:]]
    if ndim == 2:
        window[0] = slice(0, 1)
    block = np.asarray(canon[s, t, :, window[0], window[1], window[2]], dtype=np.float32)
    return block if ndim == 3 else block[:, 0]
