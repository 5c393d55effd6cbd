"""The model description (bioimageio.spec's current model format) of an exported package."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import torch

from ..engine.model import Model
from ..engine.model_file import FORMAT, FORMAT_VERSION, PACKAGE_KEY
from ._arch import Architecture
from ._tensors import ExportInputError
from ._trust import record

SDMODEL_NAME = "napari_selfsup_denoise.sdmodel"
NAME_CHARS = set(string.ascii_letters + string.digits + "_+- ()")
# Float32 arithmetic in another framework build or on another CPU: relative to the test output's values.
TOLERANCE = {"relative_tolerance": 1e-4, "absolute_tolerance": 1e-4}


def _our_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(FORMAT)
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def check_name(name: str) -> None:
    """Raise if ``name`` is not a valid BMZ model name (5-128 letters, digits, spaces, ``_+-()``)."""
    bad = sorted(set(name) - NAME_CHARS)
    if bad or not 5 <= len(name) <= 128:
        raise ExportInputError(
            f"model name {name!r} is not allowed by the BioImage Model Zoo: use 5 to 128 letters, digits, spaces "
            f"and _+-() only{' (found ' + ''.join(bad) + ')' if bad else ''}"
        )


def _tensors(model: Model, d: Path, tile: dict[str, Any]) -> tuple[Any, Any]:
    from bioimageio.spec.model import v0_5 as s

    channel = s.AxisId("channel")
    names = [f"channel{i}" for i in range(model.channels)]
    size = s.ParameterizedSize(min=tile["min"], step=tile["step"])
    inp_axes = [s.BatchAxis(), s.ChannelAxis(channel_names=names)]
    inp_axes += [s.SpaceInputAxis(id=s.AxisId(a), size=size) for a in tile["axes"]]
    out_axes = [s.BatchAxis(), s.ChannelAxis(channel_names=names)]
    out_axes += [
        s.SpaceOutputAxisWithHalo(
            id=s.AxisId(a), size=s.SizeReference(tensor_id=s.TensorId("input"), axis_id=s.AxisId(a)), halo=tile["halo"]
        )
        for a in tile["axes"]
    ]
    # bioimageio divides by (std + 1e-6): subtract it so the package normalises exactly as we do.
    std = [max(v - 1e-6, 1e-6) for v in model.norm.scale]
    pre = s.FixedZeroMeanUnitVarianceDescr(
        kwargs=s.FixedZeroMeanUnitVarianceAlongAxisKwargs(mean=list(model.norm.offset), std=std, axis=channel)
    )
    post = s.ScaleLinearDescr(
        kwargs=s.ScaleLinearAlongAxisKwargs(axis=channel, gain=list(model.norm.scale), offset=list(model.norm.offset))
    )
    inp = s.InputTensorDescr(
        id=s.TensorId("input"),
        axes=inp_axes,
        test_tensor=s.FileDescr(source=d / "test_input.npy"),
        sample_tensor=s.FileDescr(source=d / "sample_input.tif"),
        pad=s.ReflectPadding(mode="reflect"),  # explicit: an empty `pad: {}` would read as constant padding
        preprocessing=[pre],
        description="noisy image, float32 in its own intensity units",
    )
    out = s.OutputTensorDescr(
        id=s.TensorId("output"),
        axes=out_axes,
        test_tensor=s.FileDescr(source=d / "test_output.npy"),
        sample_tensor=s.FileDescr(source=d / "sample_output.tif"),
        postprocessing=[post],
        description="denoised image, float32 in the input's intensity units",
    )
    return inp, out


def _weights(d: Path, arch: Architecture) -> Any:
    from bioimageio.spec.model import v0_5 as s

    version = s.Version(torch.__version__.split("+")[0])
    state = s.PytorchStateDictWeightsDescr(
        source=d / "weights.pt",
        architecture=s.ArchitectureFromFileDescr(
            source=d / "architecture.py", callable=s.Identifier(arch.callable), kwargs=arch.kwargs
        ),
        pytorch_version=version,
    )
    script = s.TorchscriptWeightsDescr(
        source=d / "weights_torchscript.pt",
        pytorch_version=version,
        parent="pytorch_state_dict",
        comment="traced from the pytorch_state_dict weights",
    )
    return s.WeightsDescr(pytorch_state_dict=state, torchscript=script)


def describe(
    model: Model,
    d: Path,
    arch: Architecture,
    *,
    name: str,
    description: str,
    authors: list[str],
    license: str,
    cite: list[tuple[str, str]],
    tile: dict[str, Any],
) -> Any:
    """A validated ``ModelDescr`` whose files lie in ``d``."""
    from bioimageio.spec.model import v0_5 as s
    from pydantic import ValidationError

    check_name(name)
    inp, out = _tensors(model, d, tile)
    ours = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": _our_version(), "model": SDMODEL_NAME,
            "self_check": record(model)}  # fmt: skip
    try:
        return s.ModelDescr(
            name=name,
            description=description,
            authors=[s.Author(name=a) for a in authors],
            cite=[s.CiteEntry(text=text, doi=s.Doi(doi)) for text, doi in cite],
            license=s.LicenseId(license),
            documentation=s.FileDescr(source=d / "README.md"),
            covers=[s.FileDescr(source=d / "cover.png")],
            tags=[
                "denoising",
                "self-supervised",
                model.algorithm,
                f"{model.ndim}d",
                "pytorch",
                "napari-selfsup-denoise",
            ],
            inputs=[inp],
            outputs=[out],
            weights=_weights(d, arch),
            attachments=[s.FileDescr(source=d / SDMODEL_NAME)],
            config=s.Config(
                bioimageio=s.BioimageioConfig(reproducibility_tolerance=[s.ReproducibilityTolerance(**TOLERANCE)]),
                **{PACKAGE_KEY: ours},
            ),
        )
    except ValidationError as exc:
        raise ExportInputError(f"the package description is not valid: {exc}") from exc
