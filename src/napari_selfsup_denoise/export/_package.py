"""Write a trained model as a BioImage Model Zoo package (a zip that bioimageio.core can test and run)."""

from __future__ import annotations

import os
import secrets
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from ..engine.model import Model
from ..io import check_output_path
from ._arch import Architecture, ArchitectureError, architecture
from ._readme import REFERENCES, default_name, readme
from ._spec import SDMODEL_NAME, check_name, describe
from ._tensors import ExportInputError, cover, min_tile, model_output, test_input
from ._trust import SuspectModelError, exported_output, is_suspect, refusal

INSTALL_HINT = 'pip install "napari-selfsup-denoise[bmz]"  (installs bioimageio.core and bioimageio.spec)'
# The exported module must reproduce our own prediction this closely (relative to the intensity scale).
REPRODUCE_RTOL = 1e-5


class BmzUnavailableError(ImportError):
    """bioimageio.spec is not installed."""


def _check_installed() -> None:
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError as exc:
        raise BmzUnavailableError(f"exporting to the BioImage Model Zoo needs bioimageio.spec: {INSTALL_HINT}") from exc


def check_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """The ``.zip`` path to write: refuses an existing one without ``overwrite`` and a folder we cannot write to."""
    p = Path(path)
    p = p if p.suffix.lower() == ".zip" else p.with_name(p.name + ".zip")
    if p.is_dir():
        raise ExportInputError(f"{p} is a folder; give the name of the .zip file to write")
    if p.exists() and not overwrite:
        raise FileExistsError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise ExportInputError(f"cannot write {p.name}: the folder {folder} does not exist")
    try:  # a real write: permissions, read-only file systems and quotas all show here
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"cannot write {p.name}: the folder {folder} is not writable ({exc.strerror}); "
                              "choose another folder") from exc  # fmt: skip
    return p


def _scripted(arch: Architecture, net: torch.nn.Module, model: Model) -> torch.jit.ScriptModule:
    """TorchScript by tracing on a tile whose spatial sizes all differ (the blind-spot net groups equal shapes)."""
    m = model.multiple
    sizes = [min_tile(model) + m * i for i in range(model.ndim)]
    example = torch.zeros(1, model.channels, *sizes)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return torch.jit.trace(net, example, check_trace=False)


def _run(net: Any, model: Model, x: np.ndarray) -> np.ndarray:
    """What a package consumer computes on a whole image ``x``: pre-process, run, post-process."""
    with torch.no_grad():
        y = net(torch.from_numpy(model.norm.forward(x, channel_axis=1))).numpy()
    return model.norm.inverse(y, channel_axis=1)


def _check_reproduces(name: str, got: np.ndarray, want: np.ndarray, model: Model) -> None:
    tol = REPRODUCE_RTOL * (max(model.norm.scale) + float(np.abs(want).max()))
    err = float(np.abs(got - want).max())
    if not err <= tol:
        raise ArchitectureError(
            f"the exported {name} weights differ from the model by up to {err:.3g} (allowed {tol:.3g}); "
            "the package was not written (please report this)"
        )


def default_cite(model: Model) -> list[tuple[str, str]]:
    """The papers behind ``model``'s algorithm, as (text, DOI) pairs."""
    return list(REFERENCES[model.algorithm])


def export_bmz(
    model: Model,
    path: str | os.PathLike[str],
    *,
    image: Any = None,
    axes: str | None = None,
    name: str | None = None,
    authors: list[str] | None = None,
    description: str | None = None,
    license: str = "CC-BY-4.0",
    cite: list[tuple[str, str]] | None = None,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike[str]] = (),
    accept_suspect: bool = False,
) -> Path:
    """Write a BioImage Model Zoo package (a ``.zip``); needs the ``[bmz]`` extra.

    The package holds the network (PyTorch state dict with a torch-only
    architecture file, and TorchScript), pre- and post-processing from this
    model's normalisation, test tensors cut from ``image``, a cover, a README
    and the model's ``.sdmodel`` file, so :func:`~..engine.model.load_model` reads it back.
    The package computes the output the model's self-check at the end of training
    decided on (a blind-spot model's prior mean when the check chose it or fell back
    to it), and its README and description state that check.

    Parameters
    ----------
    model : Model
        The trained model.
    path : str or os.PathLike
        The ``.zip`` to write (the suffix is added when missing).
    image : array-like, optional
        An image like the training image; the package's test input is a crop
        of it. Defaults to ``model.sample``, the crop of the training image that
        the model keeps (models saved before version 2 of the file keep none).
    axes : str, optional
        Axes of ``image``; the training axes when they fit.
    name, authors, description, license : str, list of str, str, str
        Package metadata; defaults name the algorithm, the user and CC-BY-4.0.
    cite : list of (text, DOI) pairs, optional
        Citations; defaults to the paper(s) of the algorithm.
    overwrite : bool
        Replace an existing ``path``.
    inputs : iterable of path-like
        Files the package must never replace or lie inside (the image's file or
        Zarr store); a Zarr ``image``'s own local store is added.
    accept_suspect : bool
        Write a model whose own self-check failed with no safer output, marked
        suspect in the README and the description; refused otherwise.

    Returns
    -------
    pathlib.Path
        The package written.

    Raises
    ------
    SuspectModelError
        If the model failed its own self-check with no safer output and ``accept_suspect`` is False.
    """
    _check_installed()
    target = check_target(path, overwrite)
    check_output_path(target, [*inputs, *_store_of(image)], overwrite=True, what="package")
    name = name or default_name(model)
    description = description or f"Self-supervised {model.algorithm} denoiser trained with napari-selfsup-denoise."
    if is_suspect(model):
        description = f"SUSPECT (failed its self-check at the end of training; see the README): {description}"
    check_name(name)
    if image is None:
        if model.sample is None:
            raise ExportInputError(
                "this model keeps no crop of its training image (saved by an older version); pass the training "
                "image (image=..., --image FILE) to make the package's test tensors"
            )
        image, axes = model.sample, "CZYX" if model.ndim == 3 else "CYX"
    if is_suspect(model) and not accept_suspect:  # after the checks of the arguments, before any work
        raise SuspectModelError(refusal(model, "pass accept_suspect=True (--accept-suspect)"))
    x = test_input(model, image, axes)
    y = model_output(model, x, exported_output(model))
    arch = architecture(model)
    net = arch.build()
    _check_reproduces("pytorch_state_dict", _run(net, model, x), y, model)
    script = _scripted(arch, net, model)
    _check_reproduces("torchscript", _run(script, model, x), y, model)
    with tempfile.TemporaryDirectory(prefix="bmz-export-") as tmp:
        d = Path(tmp)
        (d / "architecture.py").write_text(arch.source, encoding="utf-8")
        torch.save(arch.state, d / "weights.pt")
        script.save(str(d / "weights_torchscript.pt"))
        np.save(d / "test_input.npy", x)
        np.save(d / "test_output.npy", y)
        tifffile.imwrite(d / "sample_input.tif", x)  # the same tensors as images, for people browsing the zoo
        tifffile.imwrite(d / "sample_output.tif", y)
        _write_png(d / "cover.png", cover(x, y))
        spatial = "zyx"[-model.ndim :]
        tile = {"axes": spatial, "min": min_tile(model), "step": model.multiple, "halo": model.margin}
        (d / "README.md").write_text(readme(model, name, description, tile), encoding="utf-8")
        model.save(d / SDMODEL_NAME)
        cite = cite if cite is not None else default_cite(model)
        descr = describe(model, d, arch, name=name, description=description, authors=authors or [_user()],
                         license=license, cite=cite, tile=tile)  # fmt: skip
        return _save(descr, target)


def _store_of(image: Any) -> list[str]:
    """The local folder of a Zarr array's store, where no package may go; none for other arrays."""
    root = getattr(getattr(image, "store", None), "root", None)
    return [str(root)] if isinstance(root, (str, os.PathLike)) else []


def _save(descr: Any, target: Path) -> Path:
    """Write the package next to ``target`` first and rename it, so a failed export leaves nothing behind."""
    from bioimageio.spec import save_bioimageio_package

    # not mkstemp: its 0600 would lock colleagues out; the zip gets 0666 minus the umask, like a .sdmodel
    tmp = str(target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp.zip"))
    try:
        save_bioimageio_package(descr, output_path=Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, rgb)


def _user() -> str:
    import getpass

    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"
