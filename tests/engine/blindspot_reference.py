"""A plain reference of the blind-spot network's maths, written from the paper with F.pad, torch.cat and crops.

It reads the weights of a :class:`~napari_selfsup_denoise.engine.nets.blindspot.BlindSpotNet` and computes its
forward pass the simple way (every pad, shift, crop and concatenation as its own tensor), so the tests can
check that the engine's faster code computes the same function for the same state_dict.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SLOPE = 0.1


def _conv(x: torch.Tensor, conv: torch.nn.Module) -> torch.Tensor:
    op = F.conv3d if x.ndim == 5 else F.conv2d
    return op(x, conv.weight, conv.bias, padding=conv.padding)


def _pad_rows_front(x: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` zero rows before axis 2 (F.pad lists the last axis first)."""
    return F.pad(x, [0, 0] * (x.ndim - 3) + [rows, 0])


def _half_block(x: torch.Tensor, block: torch.nn.Module) -> torch.Tensor:
    h = _pad_rows_front(x, 2)
    h = F.leaky_relu(_conv(h, block.conv1), SLOPE)
    h = F.leaky_relu(_conv(h, block.conv2), SLOPE)
    return h[:, :, : x.shape[2]]


def _half_pool(x: torch.Tensor) -> torch.Tensor:
    nd = x.ndim - 2
    pool = F.max_pool3d if nd == 3 else F.max_pool2d
    return pool(x, 2, 2, padding=(1,) + (0,) * (nd - 1))[:, :, : x.shape[2] // 2]


def branch(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One branch: half-space U-Net, then a one-row shift (the pixel's own row removed)."""
    skips = []
    h = x
    for i, block in enumerate(net.branch.enc):
        h = _half_block(h if i == 0 else _half_pool(h), block)
        skips.append(h)
    for i in reversed(range(len(net.branch.dec))):
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")
        h = _half_block(torch.cat([h, skips[i]], dim=1), net.branch.dec[i])
    return _pad_rows_front(h, 1)[:, :, : h.shape[2]]


def turn(x: torch.Tensor, k: int, inverse: bool = False) -> torch.Tensor:
    """2D: rotation by ``k * 90`` degrees; 3D: axis ``2 + k // 2`` to the front, flipped when ``k`` is odd."""
    if x.ndim == 4:
        return torch.rot90(x, -k if inverse else k, dims=(2, 3))
    axis, flip = 2 + k // 2, k % 2 == 1
    if inverse:
        x = torch.flip(x, dims=(2,)) if flip else x
        return x.transpose(2, axis)
    x = x.transpose(2, axis)
    return torch.flip(x, dims=(2,)) if flip else x


def forward(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The network's output ``(B, 2 * C, *spatial)`` computed the plain way from its weights."""
    directions = 4 if x.ndim == 4 else 6
    h = torch.cat([turn(branch(net, turn(x, k)), k, inverse=True) for k in range(directions)], dim=1)
    for i, layer in enumerate(net.fuse):
        h = _conv(h, layer)
        if i < len(net.fuse) - 1:
            h = F.leaky_relu(h, SLOPE)
    return h
