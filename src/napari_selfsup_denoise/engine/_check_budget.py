"""What a self-check may cost: how many pixels its crops hold, and what their network windows cost.

A crop is predicted on a window that adds the network's margin on every side
(:mod:`.predict`). In 2D that roughly doubles a crop. In 3D the margin applies to
three axes and stacks are thin, so the windows were mostly padding: the 16 x 32 x 128
held-out crop of the 3D sample (32 x 192 x 192) had a 64 x 80 x 176 window, 14 times
its voxels, and the end-of-training check cost several training steps after Stop.

So, in 3D, a check's crops hold about :data:`MAX_VOXELS_3D` voxels in all (2D crops
keep up to 65,536 pixels each), and in both its windows cost at most
:data:`CHECK_STEPS` training steps (a forward pass being a third of a step, as for
the live preview), but never fewer than :data:`MIN_VOXELS` pixels remain: enough
for ~1 % standard error on the figures' variance ratios, whose ranges span tens of
percent. Crops shrink along their largest extent first, towards their centre, to
multiples of the pooling grid. The 2D defaults' crops come back unchanged.

A 3D network other than blind-spot (N2V, N2V2, structN2V) is checked on windows
that carry half its margin (:func:`check_margin`; on the pooling grid): its
receptive field reaches the full margin, but what lies beyond half of it moved
no figure of the 3D N2V models measured by more than 1e-4 (the figures' ranges
span tens of percent), and the check after Stop fell from 155 to 48 GFLOP on the
3D sample (docs/benchmarks.md, "The end of a 3D run, after Stop"). A blind-spot
network needs its full margin (its branches read a fixed context), and its check
costs 9 GFLOP there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .preview_cost import FORWARD_SHARE, window_voxels

# (sample index, (z0, z1), (y0, y1), (x0, x1)) in canonical coordinates, as in _check_figures
Box = tuple[int, tuple[int, int], tuple[int, int], tuple[int, int]]

CHECK_STEPS = 2.5  # a check's windows cost at most this many training steps (every 2D default case fits)
MIN_VOXELS = 16_384  # pixels a check keeps whatever the limits: ~1 % standard error on its variance ratios
MAX_VOXELS_3D = 16_384  # 3D: voxels a check's crops hold in all (each costs 5-15 times that in its window)
MARGIN_SHARE_3D = 0.5  # share of the margin a 3D check window carries (networks other than blind-spot)


def check_margin(margin: int, multiple: int, ndim: int, blind: bool) -> int:
    """Context per side of a self-check's windows for a network of ``margin``, ``multiple`` and ``ndim``.

    The network's own margin, except for a 3D network that is not ``blind`` (blind-spot):
    :data:`MARGIN_SHARE_3D` of it, rounded up to a multiple of ``multiple``.
    """
    if ndim != 3 or blind:
        return margin
    return min(margin, -(-math.ceil(margin * MARGIN_SHARE_3D) // multiple) * multiple)


def budget_voxels(batch: int | None, patch: Sequence[int] | None) -> int | None:
    """Window voxels a check may predict for a model trained on ``batch`` x ``patch`` steps (None: unbounded)."""
    if not batch or not patch:
        return None
    return int(CHECK_STEPS * batch * math.prod(patch) / FORWARD_SHARE)


def _extents(box: Box, ndim: int) -> list[int]:
    return [hi - lo for lo, hi in (box[1:] if ndim == 3 else box[2:])]


def cost(boxes: list[Box], ndim: int, margin: int, multiple: int) -> int:
    """Voxels of the network windows that predict ``boxes``."""
    return sum(window_voxels(tuple(_extents(b, ndim)), margin, multiple) for b in boxes)


def voxels(boxes: list[Box], ndim: int) -> int:
    """Voxels (pixels in 2D) inside ``boxes``."""
    return sum(math.prod(_extents(b, ndim)) for b in boxes)


def _shrunk(box: Box, ndim: int, multiple: int, axis: int) -> Box | None:
    """``box`` with extent ``axis`` (0 Z, 1 Y, 2 X) cut to about 3/4 (a multiple of ``multiple``), centred."""
    ranges = list(box[1:])
    lo, hi = ranges[axis]
    new = max(multiple, (hi - lo) * 3 // 4 // multiple * multiple)
    if new >= hi - lo:
        return None
    start = lo + (hi - lo - new) // 2
    ranges[axis] = (start, start + new)
    return box[0], ranges[0], ranges[1], ranges[2]


def _smaller(boxes: list[Box], ndim: int, margin: int, multiple: int, floor: int) -> list[Box] | None:
    """``boxes`` with the costliest crop cut along its largest extent that can be cut (None: none can)."""
    order = sorted(range(len(boxes)), key=lambda j: cost([boxes[j]], ndim, margin, multiple), reverse=True)
    for i in order:
        ext = boxes[i][1:]
        for axis in sorted(range(3 - ndim, 3), key=lambda k: ext[k][1] - ext[k][0], reverse=True):
            box = _shrunk(boxes[i], ndim, multiple, axis)
            trial = None if box is None else [*boxes[:i], box, *boxes[i + 1 :]]
            if trial is not None and voxels(trial, ndim) >= floor:
                return trial
    return None


def fit(boxes: list[Box], ndim: int, margin: int, multiple: int, budget: int | None) -> list[Box]:
    """``boxes`` shrunk to the limits of the module docstring (window voxels ``budget``; None: no cost limit)."""
    out = list(boxes)
    most = MAX_VOXELS_3D if ndim == 3 else voxels(boxes, ndim)
    floor = min(MIN_VOXELS, voxels(boxes, ndim))
    while voxels(out, ndim) > most or (budget is not None and cost(out, ndim, margin, multiple) > budget):
        smaller = _smaller(out, ndim, margin, multiple, floor)
        if smaller is None:
            break
        out = smaller
    return out
