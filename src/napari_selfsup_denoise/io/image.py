"""An opened image (lazy data, axes, pixel sizes) and the error for unreadable inputs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from ..axes import AxesChoice, choose_axes

_UNIT_ALIASES = {"um": "micrometer", "µm": "micrometer", "\\u00B5m": "micrometer", "micron": "micrometer"}
_UNIT_ALIASES |= {"nm": "nanometer", "mm": "millimeter", "m": "meter", "s": "second", "ms": "millisecond"}


class InputError(ValueError):
    """An input path cannot be read as an image (missing, corrupt, unknown format)."""


@dataclass
class Image:
    """An opened image: lazy data plus what is needed to write a like-for-like output.

    Attributes
    ----------
    data : array-like
        numpy memmap/array or zarr array with ``shape``, ``dtype`` and slicing.
    axes : str
        Axes of ``data`` (letters of ``STCZYX``); empty when the file does not say.
    scale : dict
        Pixel size per axis letter (spatial sizes, frame interval), where known.
    unit : str or None
        Spatial unit, NGFF spelling (``micrometer``, ...).
    kind : str
        ``tiff``, ``zarr`` or ``ome-zarr``.
    path : str
        What was opened.
    meta : dict
        Format details for writing: ``imagej`` (bool), ``zarr_format``,
        ``ngff`` (the input's multiscale dict), ``levels``.
    """

    data: Any
    axes: str
    scale: dict[str, float] = field(default_factory=dict)
    unit: str | None = None
    kind: str = "tiff"
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of ``data``."""
        return tuple(int(n) for n in self.data.shape)

    def axes_or_guess(self) -> str:
        """The recorded axes, or a guess from the shape (see :meth:`axes_choice`)."""
        return self.axes_choice().axes

    def axes_choice(self, given: str | None = None, model_axes: str | None = None) -> AxesChoice:
        """The axes by the one rule of :func:`~napari_selfsup_denoise.axes.choose_axes`, and why."""
        return choose_axes(self.shape, given=given, recorded=self.axes, model_axes=model_axes)

    def close(self) -> None:
        """Release open file handles."""
        for c in self._closers:
            with contextlib.suppress(Exception):
                c.close()
        self._closers.clear()


def norm_unit(unit: Any) -> str | None:
    """NGFF spelling of a unit string (``um`` -> ``micrometer``)."""
    if not unit:
        return None
    u = str(unit).strip()
    return _UNIT_ALIASES.get(u, _UNIT_ALIASES.get(u.lower(), u))
