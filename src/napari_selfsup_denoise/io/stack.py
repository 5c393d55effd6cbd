"""Training input: one or more files opened lazily; several same-shaped ones are seen as one, stacked along S."""

from __future__ import annotations

from typing import Any

import numpy as np

from .image import Image, InputError
from .paths import expand_inputs
from .read import read_image


class StackedArray:
    """Lazy concatenation along the ``S`` axis (added in front when the arrays have none).

    Parameters
    ----------
    arrays : list of array-like
        Same shape, same axes (numpy, zarr, memmaps).
    axes : str
        Their axes.
    """

    def __init__(self, arrays: list[Any], axes: str) -> None:
        self.arrays = arrays
        self._new = "S" not in axes
        self.axes = "S" + axes if self._new else axes
        self.axis = self.axes.index("S")
        sizes = [1 if self._new else int(a.shape[self.axis]) for a in arrays]
        self._starts = np.cumsum([0, *sizes])
        shape = list(arrays[0].shape)
        if self._new:
            shape.insert(0, 0)
        shape[self.axis] = int(self._starts[-1])
        self.shape = tuple(shape)
        self.ndim = len(shape)
        self.dtype = np.result_type(*[np.dtype(a.dtype) for a in arrays])

    def _one(self, s: int, rest: tuple[Any, ...]) -> np.ndarray:
        f = int(np.searchsorted(self._starts, s, side="right")) - 1
        arr = self.arrays[f]
        if self._new:
            return np.asarray(arr[rest])
        local = s - int(self._starts[f])
        return np.asarray(arr[(*rest[: self.axis], local, *rest[self.axis :])])

    def __getitem__(self, index: Any) -> np.ndarray:
        index = tuple(index) if isinstance(index, tuple) else (index,)
        index = index + (slice(None),) * (self.ndim - len(index))
        sidx, rest = index[self.axis], index[: self.axis] + index[self.axis + 1 :]
        if isinstance(sidx, (int, np.integer)):
            return self._one(int(sidx) % self.shape[self.axis], rest).astype(self.dtype, copy=False)
        pos = self.axis - sum(isinstance(i, (int, np.integer)) for i in index[: self.axis])
        parts = [self._one(s, rest) for s in range(*sidx.indices(self.shape[self.axis]))]
        return np.stack(parts, axis=pos).astype(self.dtype, copy=False)


def open_training_data(inputs: list[str], axes: str | None) -> tuple[Any, str, list[Image]]:
    """Open one or more training inputs lazily; several are stacked along S (same shape required)."""
    paths, missing = expand_inputs(inputs)
    if missing:
        raise InputError(f"{missing[0][0]}: {missing[0][1]}")
    images = [read_image(p, axes) for p in paths]
    ax = images[0].axes_choice(axes).axes
    if len(images) == 1:
        return images[0].data, ax, images
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise InputError(f"training files must share one shape to be stacked; found {sorted(shapes)}")
    stacked = StackedArray([im.data for im in images], ax)
    return stacked, stacked.axes, images
