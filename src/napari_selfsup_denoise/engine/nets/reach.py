"""Receptive field of one blind-spot branch, worked out from its layer structure, and the patch size it implies.

Training patches must be clearly larger than one branch's receptive field
(:func:`branch_reach`, :func:`min_patch`). Each convolution pads with zeros, so
an output whose receptive field crosses the patch border sees that border. At
depth 3 a branch looks 103 rows back and 51 columns to each side: on 64 x 64
patches *every* training output saw the border, while at inference almost none
does. Trained that way, the deepest features grew about 5x on whole images and
the output shifted by several photons (collapse at batch 64 on the nuclei
benchmarks, docs/benchmarks.md), with a validation loss on patches that looked
as good as a healthy run's.
"""

from __future__ import annotations

from functools import cache

import numpy as np

# Share of one branch's training outputs whose whole receptive field lies inside the patch (as at inference).
MIN_CLEAR = 0.25


def _block_1d(n: int, back: int, ahead: int) -> np.ndarray:
    """Dependency matrix ``dep[out, in]`` of a 1D op where output ``i`` reads inputs ``i - back .. i + ahead``."""
    i = np.arange(n)
    d = i[None, :] - i[:, None]
    return (d >= -back) & (d <= ahead)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.astype(np.int64) @ b.astype(np.int64)) > 0


@cache
def branch_reach(depth: int) -> tuple[int, int, int]:
    """Receptive field of one branch output: ``(rows back, columns left, columns right)``.

    Worked out from the layer structure (two 3-wide convolutions per block, the
    one-row shifts, 2x pooling and nearest upsampling), one axis at a time; the
    worst case over the pooling grid. Depth 1, 2, 3 give (19, 8, 9), (47, 22, 21), (99, 46, 45).
    """
    n = 8 * 2 ** (depth + 3)
    out = {}
    for axis in ("forward", "lateral"):
        fwd = axis == "forward"
        block = _block_1d(n, 4, 0) if fwd else _block_1d(n, 2, 2)
        sizes = [n >> lv for lv in range(depth + 1)]
        enc = [block[: sizes[0], : sizes[0]]]
        for lv in range(1, depth + 1):
            j, i = np.arange(sizes[lv])[:, None], np.arange(sizes[lv - 1])[None, :]
            pool = (i == 2 * j - 1) | (i == 2 * j) if fwd else (i == 2 * j) | (i == 2 * j + 1)
            enc.append(_compose(block[: sizes[lv], : sizes[lv]], _compose(pool, enc[-1])))
        h = enc[-1]
        for lv in reversed(range(depth)):
            up = np.arange(sizes[lv])[:, None] // 2 == np.arange(sizes[lv + 1])[None, :]
            h = _compose(block[: sizes[lv], : sizes[lv]], _compose(up, h) | enc[lv])
        if fwd:
            h = _compose(_block_1d(n, 1, -1), h)  # the final one-row shift
        centre = [np.flatnonzero(h[c]) - c for c in range(n // 2, n // 2 + 2 ** (depth + 1))]
        out[axis] = (-min(int(c.min()) for c in centre), max(int(c.max()) for c in centre))
    return out["forward"][0], out["lateral"][0], out["lateral"][1]


def min_patch(depth: int, multiple: int) -> int:
    """Smallest patch edge (a multiple of ``multiple``) where :data:`MIN_CLEAR` of a branch's outputs see no border."""
    back, left, right = branch_reach(depth)
    p = multiple
    while (p - back) * (p - left - right) < MIN_CLEAR * p * p or p <= back:
        p += multiple
    return p
