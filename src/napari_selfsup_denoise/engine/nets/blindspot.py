"""Blind-spot network of Laine et al. (2019), 2D and 3D, written from the paper.

One branch network sees, for every output pixel, only the half-space strictly
on the low side of the first spatial axis: each convolution is padded on that
side and cropped on the other, each downsampling is preceded by a one-row shift,
and a final one-row shift removes the pixel's own row. The input is turned
so that this half-space points in every direction (4 rotations in 2D; the 6
half-spaces +-Z, +-Y, +-X in 3D); all turned copies run through the shared
branch as one batch (one batch per distinct shape), are turned back,
concatenated on channels and fused by 1x1 convolutions into a mean and a
log-variance per channel. The union of the half-spaces is everything but the
centre pixel, so the centre's own value never reaches its output.

Training patches must be clearly larger than one branch's receptive field
(:func:`branch_reach`, :attr:`BlindSpotNet.min_patch`). Each convolution pads
with zeros, so an output whose receptive field crosses the patch border sees
that border. At depth 3 a branch looks 103 rows back and 51 columns to each
side: on 64 x 64 patches *every* training output saw the border, while at
inference almost none does. Trained that way, the deepest features grew about
5x on whole images and the output shifted by several photons (collapse at
batch 64 on the nuclei benchmarks, docs/benchmarks.md), with a validation loss
on patches that looked as good as a healthy run's.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_SLOPE = 0.1
# Share of one branch's training outputs whose whole receptive field lies inside the patch (as at inference).
MIN_CLEAR = 0.25


class HalfBlock(nn.Module):
    """Two 3x3(x3) convolutions whose output at row ``i`` sees input rows ``i-4 .. i`` of axis 2 only.

    Padding every convolution on one side and cropping the other gives the same
    receptive field as padding the input by two rows once, running two ordinary
    'same' convolutions and dropping the last two rows; the latter keeps the
    tensors contiguous (about twice as fast on CPU, most of all in bf16).
    """

    def __init__(self, ndim: int, cin: int, cout: int) -> None:
        super().__init__()
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.conv1 = conv(cin, cout, 3, padding=1)
        self.conv2 = conv(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad two rows in front, two convolutions with leaky ReLUs, crop back to the input's rows."""
        return self.padded(_pad_front(x, 2))

    def padded(self, h: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of an input already padded with two zero rows in front."""
        h = _leaky(self.conv2(_leaky(self.conv1(h))))
        return _dense(h[:, :, : h.shape[2] - 2])


def _up_cat_padded(low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
    """Two zero rows, then ``cat([nearest 2x upsampling of low, skip])``, written once into one buffer.

    The same values as ``F.pad(torch.cat([F.interpolate(low, scale_factor=2), skip], 1))``
    (``skip`` is exactly twice ``low`` in every spatial size) without the two
    intermediate tensors.
    """
    c = low.shape[1]
    out = _empty(skip, (skip.shape[0], c + skip.shape[1], skip.shape[2] + 2, *skip.shape[3:]))
    out[:, :, :2].zero_()
    body = out[:, :, 2:]
    body[:, c:].copy_(skip)
    corners: list[list[int]] = [[]]
    for _ in range(low.ndim - 2):  # every corner of a 2x2 (2x2x2) block (no imports: the file is exported)
        corners = [k + [o] for k in corners for o in (0, 1)]
    for k in corners:
        body[(slice(None), slice(None, c), *(slice(o, None, 2) for o in k))].copy_(low)
    return out


def _leaky(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU; in place when no gradient is recorded (prediction: no new buffer, no page faults)."""
    return F.leaky_relu(x, _SLOPE, inplace=not torch.is_grad_enabled())


def _dense(x: torch.Tensor) -> torch.Tensor:
    """Contiguous, channels_last for 2D batches (the fast layout for oneDNN convolutions)."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x.contiguous()


def _pad_front(x: torch.Tensor, rows: int, keep: int | None = None) -> torch.Tensor:
    """``rows`` zero rows, then the first ``keep`` (default: all) rows of ``x`` along axis 2, in one dense pass.

    Equal to ``F.pad`` (and a crop), which fills the whole output with zeros before copying.
    """
    keep = x.shape[2] if keep is None else keep
    out = _empty(x, (x.shape[0], x.shape[1], rows + keep, *x.shape[3:]))
    out[:, :, :rows].zero_()
    out[:, :, rows:].copy_(x[:, :, :keep])
    return out


def _empty(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialised tensor of ``shape`` in the layout of :func:`_dense` (no copy to get there)."""
    fmt = torch.channels_last if len(shape) == 4 else torch.contiguous_format
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def shift_down(x: torch.Tensor, rows: int = 1) -> torch.Tensor:
    """Shift by ``rows`` along axis 2 (zeros enter at the start, the last rows drop)."""
    return _pad_front(x, rows, x.shape[2] - rows)


def half_pool(x: torch.Tensor) -> torch.Tensor:
    """Shift by one row, then 2x max pooling: low-res row ``j`` holds rows ``2j-1, 2j``."""
    nd = x.ndim - 2
    pool = F.max_pool3d if nd == 3 else F.max_pool2d
    return _dense(pool(x, 2, 2, padding=(1,) + (0,) * (nd - 1))[:, :, : x.shape[2] // 2])


class Branch(nn.Module):
    """U-Net of half-space convolutions (shared by all directions)."""

    def __init__(self, ndim: int, cin: int, widths: list[int]) -> None:
        super().__init__()
        depth = len(widths) - 1
        self.enc = nn.ModuleList(HalfBlock(ndim, cin if i == 0 else widths[i - 1], widths[i]) for i in range(depth + 1))
        self.dec = nn.ModuleList(HalfBlock(ndim, widths[i + 1] + widths[i], widths[i]) for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, widths[0], *spatial)`` that see only rows strictly above each pixel."""
        skips = []
        h = x
        for i, block in enumerate(self.enc):
            h = block(h if i == 0 else half_pool(h))
            skips.append(h)
        for i in reversed(range(len(self.dec))):
            dec: HalfBlock = self.dec[i]  # type: ignore[assignment]
            if not torch.is_grad_enabled():  # prediction: one buffer instead of three (same values)
                h = dec.padded(_up_cat_padded(h, skips[i]))
                continue
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = dec(torch.cat([h, skips[i]], dim=1))
        return shift_down(h)


def _turn(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """Direction ``k``: 2D rotations by ``k * 90`` degrees; 3D axis ``2 + k // 2`` to the front, flipped if odd."""
    if x.ndim == 4:
        return torch.rot90(x, -k if inverse else k, dims=(2, 3))
    axis, flip = 2 + k // 2, k % 2 == 1
    if inverse and flip:
        x = torch.flip(x, dims=(2,))
    x = x.transpose(2, axis) if axis != 2 else x
    if not inverse and flip:
        x = torch.flip(x, dims=(2,))
    return x


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


class BlindSpotNet(nn.Module):
    """Blind-spot network: mean and log-variance of a Gaussian prior per pixel and channel.

    Parameters
    ----------
    ndim : int
        2 or 3 spatial dimensions.
    channels : int
        Image channels (in and out).
    depth : int
        Number of downsamplings; input sizes must be multiples of ``2**depth``.
    base : int
        Channels of every level (a constant width keeps the deep levels cheap).
    noise : torch.nn.Module, optional
        The noise model, kept here so it is saved with the weights.
    """

    def __init__(
        self, ndim: int = 2, channels: int = 1, depth: int = 3, base: int = 24, noise: nn.Module | None = None
    ):
        super().__init__()
        self.ndim, self.channels, self.depth = ndim, channels, depth
        self.directions = 4 if ndim == 2 else 6
        widths = [base] * (depth + 1)
        self.branch = Branch(ndim, channels, widths)
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        fused = self.directions * base
        self.fuse = nn.ModuleList([conv(fused, fused, 1), conv(fused, base * 2, 1), conv(base * 2, 2 * channels, 1)])
        if noise is not None:
            self.noise = noise

    @property
    def multiple(self) -> int:
        """Input sizes must be multiples of this."""
        return 2**self.depth

    @property
    def margin(self) -> int:
        """Context per side that covers the receptive field in every direction (a multiple of :attr:`multiple`)."""
        reach = 1  # the final shift
        for lv in range(self.depth + 1):
            s = 2**lv
            convs = 2 if lv == self.depth else 4
            reach += convs * 2 * s + (3 * s if lv < self.depth else 0)  # convs; shift + pool + upsampling
        m = self.multiple
        return -(-reach // m) * m

    @property
    def min_patch(self) -> int:
        """Smallest training patch edge that keeps training contexts like inference's (see :func:`min_patch`)."""
        return min_patch(self.depth, self.multiple)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Branch features of every direction, turned back and concatenated on channels."""
        if not torch.is_grad_enabled():
            return self._features_lean(x)
        views = [_turn(x, k) for k in range(self.directions)]
        groups: dict[tuple[int, ...], list[int]] = {}
        for k, v in enumerate(views):
            groups.setdefault(tuple(v.shape), []).append(k)
        out: list[torch.Tensor | None] = [None] * self.directions
        for ks in groups.values():
            batch = torch.cat([views[k] for k in ks], dim=0)
            if batch.ndim == 4:
                batch = batch.contiguous(memory_format=torch.channels_last)
            for k, part in zip(ks, self.branch(batch).chunk(len(ks), dim=0)):
                out[k] = _turn(part, k, inverse=True)
        return torch.cat(out, dim=1)  # type: ignore[arg-type]

    def _features_lean(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`features`, one direction at a time, each turned back into its slice of one buffer.

        The same maths with a quarter of the branch's peak memory (so larger
        tiles fit) and no concatenation pass; used when no gradient is recorded.
        """
        out: torch.Tensor | None = None
        for k in range(self.directions):
            view = _turn(x, k)
            part = _turn(self.branch(_dense(view)), k, inverse=True)
            if out is None:
                c = part.shape[1]
                out = _empty(part, (x.shape[0], c * self.directions, *part.shape[2:]))
            out[:, k * c : (k + 1) * c].copy_(part)
        assert out is not None
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2 * C, *spatial)``: prior means, then prior log-variances, per channel."""
        h = self.features(x)
        for i, layer in enumerate(self.fuse):
            h = layer(h)
            if i < len(self.fuse) - 1:
                h = _leaky(h)
        return h
