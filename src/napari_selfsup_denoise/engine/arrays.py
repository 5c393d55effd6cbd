"""Canonical-order (``S, T, C, Z, Y, X``) access to any array-like, lazily.

numpy arrays get a zero-copy transposed view; other arrays (zarr, dask,
tifffile memmaps behind a wrapper) are read block by block on indexing, so
a stack larger than memory is never loaded whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..axes import CANONICAL, to_canonical, validate_axes


class CanonicalView:
    """Read blocks of an array in canonical order without loading it.

    Parameters
    ----------
    arr : array-like
        Anything with ``shape``, ``dtype`` and numpy-style basic slicing.
    axes : str
        The array's axes.
    """

    def __init__(self, arr: Any, axes: str) -> None:
        self.arr = arr
        self.axes = validate_axes(axes, len(arr.shape))
        self.dtype = np.dtype(arr.dtype)
        sizes = dict(zip(self.axes, arr.shape))
        self.shape = tuple(int(sizes.get(a, 1)) for a in CANONICAL)
        self.ndim = 6

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        index = tuple(index) + (slice(None),) * (6 - len(index))
        src = []
        for a in self.axes:
            src.append(index[CANONICAL.index(a)])
        block = np.asarray(self.arr[tuple(src)])
        kept = [a for a, ix in zip(self.axes, src) if not isinstance(ix, (int, np.integer))]
        present = [a for a in CANONICAL if a in kept]
        block = np.transpose(block, [kept.index(a) for a in present])
        expand = []
        for a, ix in zip(CANONICAL, index):
            if isinstance(ix, (int, np.integer)):
                continue
            expand.append(slice(None) if a in present else np.newaxis)
        return block[tuple(expand)]


def canonical(arr: Any, axes: str) -> Any:
    """Canonical view of ``arr``: a numpy view for numpy arrays, else a :class:`CanonicalView`."""
    if isinstance(arr, np.ndarray):
        return to_canonical(arr, axes)
    return CanonicalView(arr, axes)


def write_block(out: Any, axes: str, index: tuple[slice, ...], block: np.ndarray) -> None:
    """Write a canonical-order ``block`` into ``out`` (laid out as ``axes``) at canonical ``index``."""
    axes = validate_axes(axes)
    present = [a for a in CANONICAL if a in axes]
    drop = tuple(i for i, a in enumerate(CANONICAL) if a not in axes)
    b = block.reshape([s for i, s in enumerate(block.shape) if i not in drop])
    b = np.transpose(b, [present.index(a) for a in axes])
    out[tuple(index[CANONICAL.index(a)] for a in axes)] = b
