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
centre pixel, so the centre's own value never reaches its output. Training
patches must be clearly larger than one branch's receptive field (:mod:`.reach`).

The code computes those pads, shifts and crops with fewer memory passes. A tensor
inside a branch may carry *tail rows* at the end of axis 2, which no valid row
depends on (every layer looks back along that axis), so no block crops its output:
with gradients a crop's backward pass fills a zero copy of the whole map; without,
the decoder's concatenation (a copy anyway) takes the valid rows. Without gradients
a block's first convolution pads three rows on both ends, and the final shift is
the last convolution padded one row further, its first row zeroed; with gradients
two zero rows are copied in front (oneDNN's backward pass is slow for paddings over one).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .reach import MIN_CLEAR, branch_reach, min_patch

__all__ = ["MIN_CLEAR", "BlindSpotNet", "Branch", "HalfBlock", "branch_reach", "min_patch"]

_SLOPE = 0.1


def _half_conv(x: torch.Tensor, conv: nn.Conv2d | nn.Conv3d, rows: int) -> torch.Tensor:
    """``conv`` (3-wide, padding one on the lateral axes) padded by ``rows`` zero rows on both ends of axis 2."""
    op = F.conv3d if x.ndim == 5 else F.conv2d
    return op(x, conv.weight, conv.bias, padding=(rows,) + (1,) * (x.ndim - 3))


def _leaky(x: torch.Tensor, inplace: bool = True) -> torch.Tensor:
    """Leaky ReLU, in place unless ``inplace`` is False (autograd then keeps the input, not the output)."""
    return F.leaky_relu(x, _SLOPE, inplace=inplace)


class HalfBlock(nn.Module):
    """Two 3x3(x3) convolutions whose output at row ``i`` sees input rows ``i-4 .. i`` of axis 2 only.

    The paper's form (two zero rows in front, two 'same' convolutions), keeping tail rows (module docstring).
    """

    def __init__(self, ndim: int, cin: int, cout: int) -> None:
        super().__init__()
        conv = nn.Conv3d if ndim == 3 else nn.Conv2d
        self.conv1 = conv(cin, cout, 3, padding=1)
        self.conv2 = conv(cout, cout, 3, padding=1)

    def forward(self, x: torch.Tensor, shift: bool = False, padded: bool = False) -> torch.Tensor:
        """``(B, cout, R + t, ...)`` for ``R`` input rows, ``t`` tail rows; ``shift`` moves it one row down.

        ``padded``: ``x`` already starts with two zero rows (not in ``R``). Else without gradients the first
        convolution pads three rows (``t`` = 4, shifted 6); with them a copy puts two zero rows first (``t`` = 2).
        """
        if padded or torch.is_grad_enabled():
            h = _leaky(_half_conv(x if padded else _pad_rows(x, 2), self.conv1, 1))
            h = _leaky(_half_conv(h, self.conv2, 1))
            return _pad_rows(h[:, :, :-1], 1) if shift else h
        h = _leaky(_half_conv(x, self.conv1, 3))
        h = _leaky(_half_conv(h, self.conv2, 2 if shift else 1))
        if shift:
            h.narrow(2, 0, 1).zero_()
        return h


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` zero rows in front of axis 2 (a concatenation: F.pad would fill the whole output first)."""
    zeros = _empty(x, (x.shape[0], x.shape[1], rows, *x.shape[3:])).zero_()
    return torch.cat([zeros, x], dim=2)  # channels-last like its inputs


def half_pool(x: torch.Tensor) -> torch.Tensor:
    """Shift by one row, then 2x max pooling: low-res row ``j`` holds rows ``2j-1, 2j`` (tail rows stay tail)."""
    nd = x.ndim - 2
    pool = F.max_pool3d if nd == 3 else F.max_pool2d
    return pool(x, 2, 2, padding=(1,) + (0,) * (nd - 1))


def _dense(x: torch.Tensor) -> torch.Tensor:
    """Contiguous in the channels-last layout (the fast one for oneDNN convolutions)."""
    return x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)


def _empty(like: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Uninitialised tensor of ``shape`` in the layout of :func:`_dense`."""
    fmt = torch.channels_last if len(shape) == 4 else torch.channels_last_3d
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=fmt)


def _first_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` behind two zero rows, channels-last (a cheap copy: with one channel its own strides are ambiguous
    and the convolutions would run, slower, in the channels-first layout)."""
    out = _empty(x, (x.shape[0], x.shape[1], x.shape[2] + 2, *x.shape[3:]))
    out.narrow(2, 0, 2).zero_()
    out.narrow(2, 2, x.shape[2]).copy_(x)
    return out


def _up_cat(low: torch.Tensor, skip: torch.Tensor, rows: int) -> torch.Tensor:
    """``cat([nearest 2x upsampling of low, skip])`` on the first ``rows`` rows, written once into one buffer.

    Used without gradients (with them, the slice copies would each clone the whole gradient).
    """
    c = low.shape[1]
    out = _empty(skip, (skip.shape[0], c + skip.shape[1], rows, *skip.shape[3:]))
    out[:, c:].copy_(skip[:, :, :rows])
    low = low[:, :, : rows // 2]
    corners: list[list[int]] = [[]]
    for _ in range(low.ndim - 2):  # every corner of a 2x2 (2x2x2) block (no imports: the file is exported)
        corners = [k + [o] for k in corners for o in (0, 1)]
    for k in corners:
        out[(slice(None), slice(None, c), *(slice(o, None, 2) for o in k))].copy_(low)
    return out


class Branch(nn.Module):
    """U-Net of half-space convolutions (shared by all directions)."""

    def __init__(self, ndim: int, cin: int, widths: list[int]) -> None:
        super().__init__()
        depth = len(widths) - 1
        self.enc = nn.ModuleList(HalfBlock(ndim, cin if i == 0 else widths[i - 1], widths[i]) for i in range(depth + 1))
        self.dec = nn.ModuleList(HalfBlock(ndim, widths[i + 1] + widths[i], widths[i]) for i in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, widths[0], *spatial)`` that see only rows strictly above each pixel."""
        if torch.is_grad_enabled() and self.dec:
            return self._recorded(x)
        return self.with_tail(x)[:, :, : x.shape[2]]

    def _recorded(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with gradients: each skip keeps its tail rows (an even count), the level below is cut
        to half that before its upsampling, and the last shift and the final crop are one cut and one concatenation.
        """
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.enc):
            skips.append(block(_first_input(x), padded=True) if i == 0 else block(half_pool(skips[-1])))
        h = skips.pop()
        for i in reversed(range(len(self.dec))):
            skip = skips.pop()
            rows = skip.shape[2] - skip.shape[2] % 2
            skip = skip.narrow(2, 0, rows) if rows < skip.shape[2] else skip
            low = h.narrow(2, 0, rows // 2) if rows // 2 < h.shape[2] else h
            h = torch.cat([F.interpolate(low, scale_factor=2.0, mode="nearest"), skip], dim=1)
            h = self.dec[i](_dense(h))
        return _pad_rows(h.narrow(2, 0, x.shape[2] - 1), 1)

    def with_tail(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` with tail rows (its first ``x.shape[2]`` rows are the features), used without gradients."""
        rows = [x.shape[2] >> i for i in range(len(self.enc))]
        skips: list[torch.Tensor] = []
        h = x
        for i, block in enumerate(self.enc):
            last = i == len(self.enc) - 1 and not self.dec
            h = block(_first_input(x), shift=last, padded=True) if i == 0 else block(half_pool(h), shift=last)
            skips.append(h)
        for i in reversed(range(len(self.dec))):
            h = self.dec[i](_up_cat(h, skips[i], rows[i]), shift=i == 0)
        return h


def _turn(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """Direction ``k``: 2D rotations by ``k * 90`` degrees; 3D axis ``2 + k // 2`` to the front, flipped if odd.

    Direction 0 is ``x`` itself (``torch.rot90`` by 0 would copy it into the channels-first layout).
    """
    if x.ndim == 4:
        return torch.rot90(x, -k if inverse else k, dims=(2, 3)) if k % 4 else x
    axis, flip = 2 + k // 2, k % 2 == 1
    if inverse and flip:
        x = torch.flip(x, dims=(2,))
    x = x.transpose(2, axis) if axis != 2 else x
    if not inverse and flip:
        x = torch.flip(x, dims=(2,))
    return x


_HOST_COPY = (torch.float32, torch.float64, torch.float16)  # dtypes numpy holds


def _turn_back_into(out: torch.Tensor, x: torch.Tensor, k: int) -> None:
    """``out`` = ``x`` turned back from direction ``k``, in one copy (on the CPU in numpy, whose views may run
    backwards: torch flips into a copy first, and its copies between these views are several times slower;
    not while tracing, which sees only torch operations)."""
    if out.device.type != "cpu" or x.dtype not in _HOST_COPY or out.dtype != x.dtype or torch.jit.is_tracing():
        out.copy_(_turn(x, k, inverse=True))
    elif x.ndim == 4:
        np.copyto(out.numpy(), np.rot90(x.numpy(), -k, axes=(2, 3)))
    else:  # the inverse of _turn's 3D direction: flip axis 2 back if odd, then swap it back
        np.copyto(out.numpy(), np.swapaxes(x.numpy()[:, :, ::-1] if k % 2 else x.numpy(), 2, 2 + k // 2))


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
        return -(-reach // self.multiple) * self.multiple

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
        out: list[torch.Tensor] = list(views)
        for ks in groups.values():
            batch = torch.cat([views[k] for k in ks], dim=0)
            for k, part in zip(ks, self.branch(batch).chunk(len(ks), dim=0)):
                out[k] = _turn(part, k, inverse=True)
        return torch.cat(out, dim=1)

    def _features_lean(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`features` without gradients, one direction at a time, each turned back into its slice of one
        buffer: a quarter of the branch's peak memory (so larger tiles fit) and no concatenation pass."""
        out: torch.Tensor | None = None
        for k in range(self.directions):
            part = self.branch(_turn(x, k))
            if out is None:  # direction 0 comes first: not turned
                c = part.shape[1]
                out = _empty(part, (x.shape[0], c * self.directions, *part.shape[2:]))
            _turn_back_into(out[:, k * c : (k + 1) * c], part, k)
        assert out is not None
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 2 * C, *spatial)``: prior means, then prior log-variances, per channel."""
        return self.head(self.features(x))

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The fuse layers: means and log-variances from the concatenated features of :meth:`features`."""
        pixels = not torch.is_grad_enabled()  # the lean features are channels-last: as pixels x channels (a view),
        if pixels:  # the 1x1 convolutions are matmuls with no layout conversion
            h = h.movedim(1, -1)
        for i, layer in enumerate(self.fuse):
            conv: nn.Conv2d = layer  # type: ignore[assignment]
            h = F.linear(h, conv.weight.flatten(1), conv.bias) if pixels else conv(h)
            if i < len(self.fuse) - 1:
                h = _leaky(h)
        return h.movedim(-1, 1) if pixels else h
