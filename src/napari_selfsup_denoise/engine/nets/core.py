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

Inside a branch the encoder needs that whole crop, but the decoder, which does
most of the work at full resolution, need not: each decoder level runs on its
input less the rows and columns that no kept output depends on (:func:`decoder_crops`).

Not part of the exported network (:mod:`..export`), which runs :meth:`.BlindSpotNet.forward`.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from .blindspot import BlindSpotNet, Branch, HalfBlock, _empty, _first_input, _leaky, _turn, _turn_back_into, half_pool
from .reach import branch_reach

FLOAT_BYTES = 4
HEAD_SLAB = 1 << 18  # voxels per run of the fuse layers, whose outputs then stay small next to the features


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


def _cut(x: torch.Tensor, row: int, rows: int, side: int, sizes: list[int]) -> torch.Tensor:
    """``rows`` rows of axis 2 from ``row``, and ``sizes`` of the other spatial axes from ``side`` (a view)."""
    x = x.narrow(2, row, rows)
    for d, n in zip(range(3, x.ndim), sizes):
        x = x.narrow(d, side, n)
    return x


def decoder_crops(depth: int, back: int, side: int) -> list[tuple[int, int]]:
    """Rows and columns each decoder level leaves out at the start of its input (level 0 first).

    A decoder block on an input cut ``r`` rows and ``c`` columns in is exact from
    output row ``r + 4`` and column ``c + 2`` on (its two convolutions read 4 rows
    back and 2 columns aside, and their zero padding then reads only cut-away
    data); the last block's shift adds a row. Level 0 keeps rows from ``back``
    and columns from ``side`` on (what :func:`core_forward` keeps); each level
    below keeps what the nearest upsampling of the level above reads. Cuts are
    even, so the upsampling stays on its grid; a cut of 0 leaves the level whole.
    """
    crops = []
    rows, cols = back - 5, side - 2
    for _ in range(depth):
        r, c = max(0, rows - rows % 2), max(0, cols - cols % 2)
        crops.append((r, c))
        rows, cols = r // 2 - 4, c // 2 - 2
    return crops


def _branch_core(branch: Branch, x: torch.Tensor, back: int, side: int) -> torch.Tensor:
    """``branch(x)`` on rows ``back:`` and ``side:-side`` of the other spatial axes, without gradients.

    The decoder runs on the cuts of :func:`decoder_crops`, each level by :func:`_decode`; each skip is released
    once used.
    """
    depth = len(branch.dec)
    rows = [x.shape[2] >> i for i in range(depth + 1)]
    skips: list[torch.Tensor] = []
    for i, block in enumerate(branch.enc):
        skips.append(block(_first_input(x), padded=True) if i == 0 else block(half_pool(skips[-1])))
    h, at = skips.pop(), (0, 0)  # ``at``: where h's rows and columns start in its level
    for i, (r, c) in reversed(list(enumerate(decoder_crops(depth, back, side)))):
        sizes = [n - 2 * c for n in skips[-1].shape[3:]]
        low = _cut(h, r // 2 - at[0], (rows[i] - r) // 2, c // 2 - at[1], [n // 2 for n in sizes])
        del h  # the level below is used up once ``low`` is
        dec: HalfBlock = branch.dec[i]  # type: ignore[assignment]
        h, at = _decode(dec, low, [_cut(skips.pop(), r, rows[i] - r, c, sizes)]), (r, c)
        del low
    # the final one-row shift: output row j is row j - 1 of the last level's (unshifted) output
    return _cut(h, back - at[0] - 1, rows[0] - back, side - at[1], [n - 2 * side for n in x.shape[3:]])


def phase_weights(w: torch.Tensor) -> torch.Tensor:
    """A 3-wide kernel ``w`` ``(out, in, 3, ...)`` on a 2x nearest upsampling, as 2-wide kernels on the low resolution.

    Along each axis an output at an even index reads the low-resolution voxels ``j - 1, j`` with taps
    ``(w0, w1 + w2)``, one at an odd index ``j, j + 1`` with ``(w0 + w1, w2)``. Returns one kernel per
    combination of parities (the row's first), stacked on the output channels: ``(2**nd * out, in, 2, ...)``.
    Sums, not a matrix product, so autocast leaves the taps in the weights' precision.
    """
    k = w.unsqueeze(0)  # (parities so far, out, in, taps...)
    for axis in range(3, w.ndim + 1):
        t0, t1, t2 = (k.narrow(axis, i, 1) for i in range(3))
        even, odd = torch.cat([t0, t1 + t2], dim=axis), torch.cat([t0 + t1, t2], dim=axis)
        k = torch.stack([even, odd], dim=1).flatten(0, 1)
    return k.flatten(0, 1)


def _decode(block: HalfBlock, low: torch.Tensor, skip: list[torch.Tensor]) -> torch.Tensor:
    """``block(_up_cat(low, skip[0], rows))``, the upsampled half's convolution run on ``low`` by parities.

    The first convolution reads ``cat([upsampled low, skip])``: its skip half runs as it is (padded as
    :class:`.HalfBlock` pads: 3 rows, 1 column); on the upsampling, each output parity reads 2 low-resolution
    voxels per axis (:func:`phase_weights`), so that half runs at the low resolution with 2-wide kernels
    (4 of 9 multiplications per voxel in 2D, 8 of 27 in 3D) and is added into every parity's voxels.
    ``skip`` is a list, emptied here, so the skip is released after its convolution. The second
    convolution runs as the block's module (its padding is the unshifted block's), so module hooks
    (a stop inside the pass: ``engine._abort``) see every decoder level.
    """
    nd, c = low.ndim - 2, low.shape[1]
    conv = F.conv3d if nd == 3 else F.conv2d
    weight = block.conv1.weight
    h = conv(skip.pop(), weight[:, c:], block.conv1.bias, padding=(3,) + (1,) * (nd - 1))
    phases = conv(low, phase_weights(weight[:, :c]), padding=(2,) + (1,) * (nd - 1))
    out = h.shape[1]
    for i, parity in enumerate(itertools.product((0, 1), repeat=nd)):
        part = phases[:, i * out : (i + 1) * out].narrow(2, parity[0], h.shape[2] // 2)
        for d, p in zip(range(3, h.ndim), parity[1:]):
            part = part.narrow(d, p, h.shape[d] // 2)
        h[(slice(None), slice(None), *(slice(p, None, 2) for p in parity))].add_(part)
    del phases
    return _leaky(block.conv2(_leaky(h)))


def branch_voxels(net: BlindSpotNet, window: tuple[int, ...], margin: int) -> tuple[int, int]:
    """Input voxels of all branches for one window: :func:`core_forward`'s, and ``net(x)``'s (whole windows)."""
    crops = sum(math.prod(v) for v in _views(net, window, margin))
    return crops, net.directions * math.prod(window)


def _views(net: BlindSpotNet, window: tuple[int, ...], margin: int) -> list[list[int]]:
    """Spatial shape of each direction's branch input (its own axis first, as the branch sees it)."""
    back, side = context(net.depth, net.multiple)
    core = [n - 2 * margin for n in window]
    views = []
    for k in range(net.directions):
        axis = k % 2 if len(window) == 2 else k // 2  # the axis the direction looks back along
        views.append([core[axis] + back] + [c + 2 * side for d, c in enumerate(core) if d != axis])
    return views


def core_bytes(net: BlindSpotNet, window: tuple[int, ...], margin: int, batch: int = 1, tta: bool = False) -> int:
    """Peak bytes of :func:`core_forward` and the posterior on ``batch`` float32 windows of spatial shape ``window``.

    Counted from the tensors alive at the peaks, next to the directions' features gathered so far: a
    branch's first block (its input and two outputs, with their extra rows), or its last decoder level
    (the skip, the contiguous copy of its cut and the first convolution's output, and the level below);
    or the fuse layers (the features, and two layers' outputs on :data:`HEAD_SLAB` voxels). The window
    and its turned copy, the posterior's maps and, with ``tta``, a transformed copy count on top.
    """
    first: HalfBlock = net.branch.enc[0]  # type: ignore[assignment]
    base, channels, nd = first.conv1.out_channels, net.channels, len(window)
    core = math.prod(n - 2 * margin for n in window)
    features = net.directions * base * core
    r, c = (decoder_crops(net.depth, *context(net.depth, net.multiple)) or [(0, 0)])[0]
    branch = 0
    for v in _views(net, window, margin):
        encoder = (2 * base + channels) * (v[0] + 2) * math.prod(v[1:])
        cut = (v[0] - r + 4) * math.prod(n - 2 * c for n in v[1:])
        branch = max(branch, encoder, base * (math.prod(v) + math.prod(v) // 2**nd + 2 * cut))
    extra = channels * (math.prod(window) * (3 if tta else 2) + 12 * core)
    slabs = batch * core > HEAD_SLAB  # else the features are freed after the first layer (see _head)
    head = batch * features + (net.directions + (2 if slabs else 0)) * base * min(HEAD_SLAB, batch * core)
    return FLOAT_BYTES * (max(batch * (features + branch), head) + batch * extra)


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
    return _head(net, [_features(net, x, margin, back, side)])


def _head(net: BlindSpotNet, box: list[torch.Tensor]) -> torch.Tensor:
    """``net.head(features)``, run on slabs of :data:`HEAD_SLAB` voxels along axis 2 (it acts on each voxel alone).

    ``box`` holds the features; unslabbed, they are handed over, so the head frees them after its first layer.
    """
    n, width = box[0].shape[2], box[0].shape[0] * math.prod(box[0].shape[3:])
    rows = max(1, HEAD_SLAB // width)
    if rows >= n:
        return net.head(box.pop())
    features = box.pop()
    out: torch.Tensor | None = None
    for r in range(0, n, rows):
        part = net.head(features.narrow(2, r, min(rows, n - r)))
        if out is None:
            out = _empty(part, (part.shape[0], part.shape[1], n, *part.shape[3:]))
        out.narrow(2, r, part.shape[2]).copy_(part)
    assert out is not None
    return out


def _features(net: BlindSpotNet, x: torch.Tensor, margin: int, back: int, side: int) -> torch.Tensor:
    """Every direction's branch features on the core, turned back and concatenated on channels."""
    out: torch.Tensor | None = None
    for k in range(net.directions):
        view = _crop(_turn(x, k), margin, margin - side)
        view = view.narrow(2, margin - back, view.shape[2] - margin + back)
        if net.branch.dec:
            part = _branch_core(net.branch, view, back, side)
        else:
            part = _crop(net.branch(view).narrow(2, back, view.shape[2] - back), 0, side)
        if out is None:  # direction 0 comes first: not turned
            c = part.shape[1]
            out = _empty(part, (x.shape[0], c * net.directions, *part.shape[2:]))
        _turn_back_into(out[:, k * c : (k + 1) * c], part, k)
        del part
    assert out is not None
    return out
