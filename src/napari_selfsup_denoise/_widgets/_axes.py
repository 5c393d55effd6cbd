"""A layer's axes by the one rule of :func:`napari_selfsup_denoise.axes.choose_axes`, shared by both widgets.

napari's readers give no axis labels, so the letters come from, in order: the
viewer's axis labels when they are axis letters, the file the layer was opened
from (ImageJ / OME-TIFF / NGFF metadata), a model's training axes, or a guess
from the shape, with the reason shown next to the axes field.
"""

from __future__ import annotations

from typing import Any

from ..axes import AXES_ALLOWED, AxesChoice, AxesError, choose_axes, validate_axes
from ._layers import image_data


def layer_axes_choice(layer: Any, labels: tuple[str, ...] = (), model_axes: str | None = None) -> AxesChoice:
    """Axes for a layer and why (the viewer's labels, its file, ``model_axes`` when they fit, or a guess).

    Parameters
    ----------
    layer : napari.layers.Image
        The layer.
    labels : tuple of str
        The viewer's ``dims.axis_labels``; the last ``layer.ndim`` are the layer's.
    model_axes : str, optional
        The training axes of the model that will denoise the layer.

    Returns
    -------
    AxesChoice
        E.g. ``TYX (from the file)`` or ``ZYX? (guessed: a Z stack, ...)``.
    """
    shape = tuple(int(n) for n in image_data(layer).shape)
    rgb = bool(layer.rgb)
    own = _viewer_axes(labels, shape, rgb)
    if own:
        return AxesChoice(own, "from the viewer's labels")
    return choose_axes(shape, recorded=_file_axes(layer, shape), rgb=rgb, model_axes=model_axes)


def layer_axes(layer: Any, labels: tuple[str, ...] = ()) -> str:
    """Axes for a layer (see :func:`layer_axes_choice`)."""
    return layer_axes_choice(layer, labels).axes


def file_of(layer: Any, placeholder: str | None = None) -> str | None:
    """The file a layer was opened from (``layer.source.path``), else ``placeholder``."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return str(path) if path else placeholder


def _viewer_axes(labels: tuple[str, ...], shape: tuple[int, ...], rgb: bool) -> str | None:
    """The viewer's labels as axes, when every one of the layer's is an axis letter and they fit."""
    nd = len(shape) - (1 if rgb else 0)
    own = [str(a).strip().upper() for a in (labels[-nd:] if len(labels) >= nd else ())]
    if not own or not all(len(a) == 1 and a in AXES_ALLOWED for a in own):
        return None
    try:
        return validate_axes("".join(own) + ("C" if rgb else ""), len(shape))
    except AxesError:
        return None


def _file_axes(layer: Any, shape: tuple[int, ...]) -> str | None:
    """Axes recorded in the layer's file (ImageJ, OME, NGFF), when the file's shape is the layer's."""
    path = file_of(layer)
    if not path:
        return None
    from ..io import read_image

    try:
        img = read_image(path)
    except (OSError, ValueError):  # not ours to read (another plugin's format), moved, damaged
        return None
    try:  # empty when the file names no axes (io reads tifffile's unnamed Q / I as unknown)
        return img.axes if img.axes and img.shape == shape else None
    finally:
        img.close()
