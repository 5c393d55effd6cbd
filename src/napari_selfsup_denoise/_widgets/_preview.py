"""Live preview: the main thread chooses the region on screen, the worker reads it from the snapshot.

The worker calls :class:`PreviewSource` (no napari objects inside it) every few
seconds; the engine denoises what it returns. The region is the current slice
through the training axes, cropped around the centre of the view so the
preview costs a small fraction of a training step budget.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ._layers import Snapshot

PREVIEW_YX = 256
PREVIEW_Z = 16
# At most this share of the wall time goes to previews (the issue allows ~10 % slower training).
PREVIEW_SHARE = 0.08
Region = tuple[tuple[Any, ...], tuple[int, ...]]


def view_camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` since napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def _window(centre: float, size: int, length: int) -> tuple[int, int]:
    length = min(length, size)
    start = int(np.clip(round(centre) - length // 2, 0, size - length))
    return start, start + length


class PreviewSource:
    """Callable handed to the engine: returns the current preview crop of the snapshot.

    Parameters
    ----------
    snap : Snapshot
        The training data (never a napari layer).
    axes : str
        The training axes, one letter per axis of ``snap.data``.
    """

    def __init__(self, snap: Snapshot, axes: str) -> None:
        self.snap, self.axes = snap, axes
        self.region: Region | None = None
        self.used: Region | None = None
        self.cost = 0.0
        self.previews = 0
        self.called_at = -math.inf

    def __call__(self) -> np.ndarray | None:
        """Worker side: read the region chosen last on the main thread (None skips this preview).

        A preview is skipped while the time since the last one is shorter than
        its measured cost divided by ``PREVIEW_SHARE``, so previews never take
        more than that share of the training time, however slow the device.
        """
        region, now = self.region, time.perf_counter()
        if region is None or now - self.called_at < self.cost / PREVIEW_SHARE:
            return None
        self.used, self.called_at = region, now
        return np.asarray(self.snap.data[region[0]])

    def arrived(self) -> None:
        """Main thread: a preview came back; its cost is the time since the crop was handed out.

        The first preview also pays for warming up inference (kernels, caches),
        so its cost is not used to space the next one.
        """
        cost = max(0.0, time.perf_counter() - self.called_at)
        self.cost, self.previews = (cost if self.previews else 0.0), self.previews + 1

    def follow(self, viewer: Any, layer: Any) -> None:
        """Main thread: choose the region from the viewer's current slice and camera centre."""
        point = list(viewer.dims.point)
        displayed = list(viewer.dims.displayed)
        centre = list(view_camera(viewer).center)[-len(displayed) :]
        for d, c in zip(displayed, centre):
            point[d] = c
        pos = list(layer.world_to_data(point)) + ([0.0] if self.snap.rgb else [])
        index: list[int | slice] = []
        start: list[int] = []
        for a, size, p in zip(self.axes, self.snap.data.shape, pos):
            if a in "ST":
                i = int(np.clip(round(p), 0, size - 1))
                index.append(i)
                start.append(i)
                continue
            length = {"Y": PREVIEW_YX, "X": PREVIEW_YX, "Z": PREVIEW_Z}.get(a, size)
            lo, hi = _window(p, size, length)
            index.append(slice(lo, hi))
            start.append(lo)
        self.region = (tuple(index), tuple(start))


def preview_layer_data(pv: np.ndarray, region: Region) -> np.ndarray:
    """Give the preview crop the source's dimensionality (size 1 along sliced axes)."""
    index = region[0]
    shape = []
    it = iter(pv.shape)
    for ix in index:
        shape.append(1 if isinstance(ix, int) else next(it))
    return pv.reshape(shape)


def preview_translate(snap: Snapshot, start: tuple[int, ...]) -> tuple[float, ...]:
    """World translate of a crop starting at ``start`` (data coordinates) of the source layer."""
    from napari.utils.transforms import CompositeAffine

    p = snap.placement
    nd = len(p["scale"])
    lin = CompositeAffine(scale=p["scale"], rotate=p["rotate"], shear=p["shear"], ndim=nd).linear_matrix
    offset = np.asarray(start[:nd], dtype=float)
    return tuple(np.asarray(p["translate"], dtype=float) + lin @ offset)
