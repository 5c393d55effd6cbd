"""The blind-spot network's output on a window's core, computed from the context each direction sees.

A prediction window carries ``margin`` pixels of context on every side of its
core: enough for the whole network, whose six (3D) or four (2D) directions
together look every way. One direction's branch, though, looks only back along
its own axis (``back`` rows, :func:`.reach.branch_reach`) and a few columns to
the sides: it never reads the rows ahead of the core, and across its axis it
needs far less than the margin. :func:`core_forward` runs each direction's
branch on that crop of the window, with every crop starting on the network's
pooling grid (so each kept output is computed from exactly the inputs it had),
and the 1x1 fuse layers on the core only. The result equals ``net(x)`` without
its margin, to float rounding. The branches then read
:func:`branch_voxels` instead of ``directions`` whole windows: in 3D (depth 1,
margin 20) 47 % of the voxels for a 32 x 64 x 64 core, in 2D (depth 2, margin
52) 52 % for a 96 x 96 core.

Not part of the exported network (:mod:`..export`), which runs :meth:`.BlindSpotNet.forward`.
"""

from __future__ import annotations

import math

import torch

from .blindspot import BlindSpotNet, _empty, _turn
from .reach import branch_reach


def context(depth: int, multiple: int) -> tuple[int, int]:
    """Rows back and columns to each side that a branch output needs, rounded up to ``multiple``."""
    back, left, right = branch_reach(depth)
    return -(-back // multiple) * multiple, -(-max(left, right) // multiple) * multiple


def crop_margin(x: torch.Tensor, margin: int) -> torch.Tensor:
    """``x`` ``(B, C, *spatial)`` without ``margin`` at both ends of every spatial axis (a view)."""
    for d in range(2, x.ndim):
        x = x.narrow(d, margin, x.shape[d] - 2 * margin)
    return x


def _crop(view: torch.Tensor, ahead: int, side: int) -> torch.Tensor:
    """``view`` less ``ahead`` rows at the end of axis 2 and ``side`` at both ends of the other spatial axes."""
    view = view.narrow(2, 0, view.shape[2] - ahead)
    for d in range(3, view.ndim):
        view = view.narrow(d, side, view.shape[d] - 2 * side)
    return view


def branch_voxels(net: BlindSpotNet, window: tuple[int, ...], margin: int) -> tuple[int, int]:
    """Input voxels of all branches for one window: :func:`core_forward`'s, and ``net(x)``'s (whole windows)."""
    back, side = context(net.depth, net.multiple)
    core = [n - 2 * margin for n in window]
    crops = 0
    for k in range(net.directions):
        axis = k % 2 if len(window) == 2 else k // 2  # the axis the direction looks back along
        crops += math.prod(c + (back if d == axis else 2 * side) for d, c in enumerate(core))
    return crops, net.directions * math.prod(window)


def core_forward(net: BlindSpotNet, x: torch.Tensor, margin: int) -> torch.Tensor:
    """``crop_margin(net(x), margin)``, computed on each direction's context only (see the module docstring).

    Parameters
    ----------
    net : BlindSpotNet
        The network.
    x : torch.Tensor
        Windows ``(B, C, *spatial)`` whose sizes are multiples of ``net.multiple``.
    margin : int
        Context on every side of the core, a multiple of ``net.multiple`` and at least :func:`context`.

    Raises
    ------
    ValueError
        If ``margin`` is off the pooling grid or smaller than a branch's context.
    """
    back, side = context(net.depth, net.multiple)
    if margin % net.multiple or margin < max(back, side):
        raise ValueError(
            f"margin {margin} must be a multiple of {net.multiple} and at least {max(back, side)}, "
            "the context a branch reads"
        )
    out: torch.Tensor | None = None
    for k in range(net.directions):
        view = _crop(_turn(x, k), margin, margin - side)
        view = view.narrow(2, margin - back, view.shape[2] - margin + back)
        part = _crop(net.branch(view).narrow(2, back, view.shape[2] - back), 0, side)
        part = _turn(part, k, inverse=True)
        if out is None:
            c = part.shape[1]
            out = _empty(part, (x.shape[0], c * net.directions, *part.shape[2:]))
        out[:, k * c : (k + 1) * c].copy_(part)
    assert out is not None
    return net.head(out)
