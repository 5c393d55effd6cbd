"""Noise2Void pixel manipulation, vectorised in torch.

A batch is ``(B, C, *spatial)`` with 2 or 3 spatial dimensions. Masked positions
are shared by all channels, chosen by stratified sampling (one random pixel per
grid box), and replaced by a random neighbour (N2V), the neighbourhood median
(N2V2), and for structN2V the pixels along one or more axes around them (a line, or a cross) are
replaced by values from random positions of the same patch.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

import torch


def _gen_device(gen: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: on the generator's device (a CUDA generator draws there, without host copies)."""
    return gen.device if gen is not None else torch.device("cpu")


def grid_spacing(fraction: float, ndim: int) -> int:
    """Box edge so that one pixel per box masks about ``fraction`` of the pixels."""
    return max(1, round(fraction ** (-1.0 / ndim)))


def stratified_coords(
    batch: int, spatial: tuple[int, ...], fraction: float, gen: torch.Generator | None = None
) -> torch.Tensor:
    """One random pixel in every ``g``-sized box of every patch, on the generator's device (the CPU without one).

    Returns
    -------
    torch.Tensor
        Long tensor ``(M, 1 + ndim)``: batch index, then the spatial coordinates.
    """
    coords, inside = _box_draws(batch, spatial, fraction, gen)
    return coords[inside]


def _box_draws(
    batch: int, spatial: tuple[int, ...], fraction: float, gen: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random pixel in every box of every patch ``(M, 1 + ndim)``, and whether it lies inside the patch."""
    nd, g = len(spatial), grid_spacing(fraction, len(spatial))
    boxes, b, size = _grid(batch, spatial, g, _gen_device(gen))
    coords = boxes + torch.randint(0, g, boxes.shape, generator=gen, device=boxes.device)
    coords = torch.cat([b, coords], dim=-1).reshape(-1, 1 + nd)
    return coords, (coords[:, 1:] < size).all(-1)


@functools.lru_cache(maxsize=32)
def _grid(
    batch: int, spatial: tuple[int, ...], g: int, dev: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The boxes' corners ``(batch, boxes, ndim)``, their batch index ``(batch, boxes, 1)`` and the patch size.

    Made once per batch shape and device (every step of a run draws in the same boxes).
    """
    nd = len(spatial)
    with torch.inference_mode(False):  # kept for later calls: an ordinary tensor, whatever mode made it
        axes = [torch.arange(0, s, g, device=dev) for s in spatial]
        boxes = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, nd)
        boxes = boxes.unsqueeze(0).expand(batch, -1, -1)
        b = torch.arange(batch, device=dev).view(batch, 1, 1).expand(-1, boxes.shape[1], 1)
    return boxes, b, _to(spatial, dev)


def _to(values: Any, device: torch.device) -> torch.Tensor:
    """A small constant tensor on ``device`` without waiting for it (a blocking copy would wait for the queue)."""
    with torch.inference_mode(False):
        return torch.as_tensor(values).to(device, non_blocking=True)


@functools.lru_cache(maxsize=32)
def _offsets(ndim: int, radius: int, device: torch.device) -> torch.Tensor:
    """:func:`neighbour_offsets` on ``device``, copied there once (not every step)."""
    return _to(neighbour_offsets(ndim, radius), device)


@functools.lru_cache(maxsize=32)
def _bounds(spatial: tuple[int, ...], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The patch size, zeros and the size less one, per spatial axis on ``device`` (made once per shape)."""
    size = _to(spatial, device)
    with torch.inference_mode(False):
        return size, torch.zeros_like(size), size - 1


def neighbour_offsets(ndim: int, radius: int) -> torch.Tensor:
    """All offsets in ``[-radius, radius]^ndim`` except the centre, ``(K, ndim)``."""
    rng = range(-radius, radius + 1)
    offs = [o for o in itertools.product(rng, repeat=ndim) if any(o)]
    return torch.tensor(offs, dtype=torch.long)


def _shift_inside(coords: torch.Tensor, offs: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    """``coords + offs``, with the sign of an offset flipped on axes where it leaves the patch.

    Flipping keeps the offset non-zero, so the result is never the centre pixel.
    """
    size, zero, top = _bounds(spatial, coords.device)
    pos = coords + offs
    out = (pos < 0) | (pos >= size)
    return torch.where(out, coords - offs, pos).clamp(min=zero, max=top)


def _gather(x: torch.Tensor, b: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Values ``x[b, :, *pos]`` as ``(M, C)``."""
    idx: tuple[Any, ...] = (b, slice(None), *pos.unbind(-1))
    return x[idx]


def _put(x: torch.Tensor, b: torch.Tensor, pos: torch.Tensor, values: torch.Tensor) -> None:
    idx: tuple[Any, ...] = (b, slice(None), *pos.unbind(-1))
    x[idx] = values


def n2v_manipulate(
    x: torch.Tensor,
    fraction: float,
    radius: int = 2,
    mode: str = "uniform",
    struct: Sequence[tuple[int, int]] = (),
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask pixels of a batch for blind-spot training.

    Parameters
    ----------
    x : torch.Tensor
        Batch ``(B, C, *spatial)`` (not modified).
    fraction : float
        Approximate share of masked pixels.
    radius : int
        Neighbourhood radius for the replacement value.
    mode : str
        ``uniform`` (random neighbour, N2V) or ``median`` (neighbourhood median, N2V2).
    struct : sequence of (axis, span), optional
        structN2V's mask lines: spatial axis index (0-based over the spatial dims) and odd span; two
        lines mask a cross (one along each axis, through the masked pixel). Empty: no structN2V mask.
    gen : torch.Generator, optional
        Seeded generator for reproducibility.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The manipulated batch and a float mask ``(B, 1, *spatial)`` of masked pixels.
    """
    spatial = tuple(x.shape[2:])
    nd, n = len(spatial), x.shape[0]
    coords, inside = (t.to(x.device) for t in _box_draws(n, spatial, fraction, gen))
    # Draws that fell outside the patch (in boxes cut by its edge) are written to a spare batch entry ``n``
    # and dropped with it: no boolean selection, whose size the host would have to wait for on a GPU.
    b = torch.where(inside, coords[:, 0], n)
    c = torch.stack([coords[:, 1 + d].clamp(max=s - 1) for d, s in enumerate(spatial)], dim=-1)
    src = b.clamp(max=n - 1)  # where the values are read (a spare draw reads a real entry; it is dropped)
    offs = _offsets(nd, radius, x.device)
    if mode == "uniform":
        pick = offs[torch.randint(0, len(offs), (len(c),), generator=gen, device=_gen_device(gen)).to(x.device)]
        values = _gather(x, src, _shift_inside(c, pick, spatial))
    elif mode == "median":
        nb = _shift_inside(c.unsqueeze(1), offs.unsqueeze(0), spatial)  # (M, K, nd)
        vals = _gather(x, src.unsqueeze(1).expand(-1, len(offs)), nb)  # (M, K, C)
        values = vals.median(dim=1).values
    else:
        raise ValueError(f"unknown replacement mode {mode!r}; use 'uniform' or 'median'")
    out = torch.cat([x, x[:1]])  # the copy to manipulate, with the spare entry
    for line in struct:
        _struct_replace(x, out, (b, src), c, line, gen)
    _put(out, b, c, values)
    mask = torch.zeros((n + 1, 1, *spatial), dtype=x.dtype, device=x.device)
    idx: tuple[Any, ...] = (b, 0, *c.unbind(-1))
    # a tensor value made on the device: a Python 1.0 would be copied from the host (a blocking copy on CUDA)
    mask[idx] = torch.ones((), dtype=x.dtype, device=x.device)
    return out[:n], mask[:n]


def _struct_replace(
    x: torch.Tensor,
    out: torch.Tensor,
    b: tuple[torch.Tensor, torch.Tensor],
    c: torch.Tensor,
    struct: tuple[int, int],
    gen: torch.Generator | None,
) -> None:
    """Replace pixels along ``struct`` around each masked pixel with random patch values.

    ``b`` is where each draw is written (the spare entry for a draw outside the patch) and where it is read.
    """
    (put, read), (axis, span) = b, struct
    spatial = tuple(x.shape[2:])
    for j in range(-(span // 2), span // 2 + 1):
        if j == 0:
            continue
        pos = c.clone()
        pos[:, axis] += j
        ok = (pos[:, axis] >= 0) & (pos[:, axis] < spatial[axis])  # elsewhere: the spare entry, dropped
        pos[:, axis] = pos[:, axis].clamp(0, spatial[axis] - 1)
        src = torch.stack([torch.randint(0, s, (len(c),), generator=gen, device=_gen_device(gen)) for s in spatial], -1)
        _put(out, torch.where(ok, put, x.shape[0]), pos, _gather(x, read, src.to(x.device)))


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over masked pixels only (all channels)."""
    sq = (pred.float() - target.float()) ** 2 * mask
    return sq.sum() / (mask.sum() * pred.shape[1]).clamp(min=1.0)
