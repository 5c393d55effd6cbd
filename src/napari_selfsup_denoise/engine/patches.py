"""Training patches cut on the training device from the normalised image held there.

When the normalised training data fits (a share of the device's free memory;
on the CPU also at most :data:`HOST_MAX_BYTES`), it is copied to the device
once. Every batch is then one index gather there that cuts the patches and
applies their augmentation (quarter turns and a mirror, as :func:`dihedral`),
so no image data moves from the host per step: only the patch positions, a
few integers per patch, drawn by the sampler's numpy generator exactly as on
the host path (both paths give the same batches).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .device import available_memory

DEVICE_SHARE = 4  # the data may take at most 1 / DEVICE_SHARE of the device's free memory
HOST_MAX_BYTES = 256 << 20  # off CUDA no larger copy is made: patches are then cut from the caller's array


def fits(nbytes: int, device: torch.device) -> bool:
    """Whether ``nbytes`` of training data may be held on ``device``."""
    limit = available_memory(device) // DEVICE_SHARE
    if device.type != "cuda":
        limit = min(limit, HOST_MAX_BYTES)
    return nbytes <= limit


def dihedral_offsets(edge: int, row_stride: int) -> torch.Tensor:
    """Where each pixel of a transformed square patch comes from, as flat offsets ``(8, edge, edge)``.

    Entry ``2 * k + flip`` is the transform of :func:`dihedral` (``k`` quarter
    turns, then a mirror of X): pixel ``(i, j)`` of the transformed patch is the
    source pixel at offset ``[2 * k + flip, i, j]`` from the patch's corner, in an
    array whose rows are ``row_stride`` apart.
    """
    grid = np.arange(edge * edge).reshape(edge, edge)
    tables = [dihedral(grid, k, flip) for k in range(4) for flip in (False, True)]
    src = np.stack(tables)
    return torch.from_numpy((src // edge) * row_stride + src % edge)


def _load(canon: Any, norm: Any, device: torch.device) -> torch.Tensor:
    """The whole canonical array normalised, as ``(S * T, C, Z, Y, X)`` float32 on ``device``, one sample at a time."""
    s_n, t_n = canon.shape[:2]
    out = torch.empty((s_n * t_n, *canon.shape[2:]), dtype=torch.float32, device=device)
    for s in range(s_n):
        for t in range(t_n):
            block = norm.forward(np.asarray(canon[s, t], dtype=np.float32), channel_axis=0)
            out[s * t_n + t].copy_(torch.from_numpy(np.ascontiguousarray(block)))
    return out


class DevicePatches:
    """Normalised arrays held on ``device``; :meth:`cut` cuts augmented patches from all of them at once.

    On a GPU a batch is one index gather (one kernel, whatever the batch size);
    on the CPU it is one copy of strided views (a gather would compute an index
    per pixel, which is slower there than copying rows).

    Parameters
    ----------
    arrays : list of array-like
        Canonical arrays of one shape (the input, and the Noise2Noise target).
    norm : Normalisation
        Applied once, as the host path applies it per patch (the same float32 values).
    patch : tuple of int
        Patch shape ``(Z, Y, X)``; quarter turns need ``Y == X``.
    device : torch.device
        Where the data and the batches live.
    gather : bool, optional
        Cut by index gather (default: on CUDA).
    """

    def __init__(
        self,
        arrays: list[Any],
        norm: Any,
        patch: tuple[int, int, int],
        device: torch.device,
        gather: bool | None = None,
    ) -> None:
        self.device, self.patch = device, patch
        self.gather = device.type == "cuda" if gather is None else gather
        self.data = [_load(a, norm, device) for a in arrays]
        c = self.data[0].shape[1]
        self.strides = tuple(int(s) for s in self.data[0].stride()[:4])
        pz, py, px = patch
        s_c, s_z, s_y = self.strides[1:]
        chan = (torch.arange(c) * s_c).view(1, c, 1, 1, 1)
        depth = (torch.arange(pz) * s_z).view(1, 1, pz, 1, 1)
        if py == px:
            plane = dihedral_offsets(py, s_y)
        else:  # no quarter turns: only the identity
            plane = (torch.arange(py)[:, None] * s_y + torch.arange(px)).unsqueeze(0)
        # every transform's offsets from a patch's corner, (transforms, C, Z, Y, X): a cut adds the corner and gathers
        self._offsets = (chan + depth + plane[:, None, None]).to(device)

    def cut(self, picks: list[tuple[int, tuple[int, int, int], int, bool]]) -> list[torch.Tensor]:
        """Patches ``(B, C, Z, Y, X)`` of every array for ``(sample, (z, y, x) corner, k, flip)`` picks.

        Each patch equals ``dihedral(array[sample, :, z:, y:, x:][patch], k, flip)``.
        """
        if self._offsets.shape[0] == 1 and any(k or flip for *_, k, flip in picks):
            raise ValueError("quarter turns and mirrors need a square patch")
        if not self.gather:
            return [self._copy(d.numpy(), picks) for d in self.data]
        s_n, s_z, s_y = self.strides[0], self.strides[2], self.strides[3]
        rows = [(n * s_n + z * s_z + y * s_y + x, 2 * k + int(flip)) for n, (z, y, x), k, flip in picks]
        dev = torch.tensor(rows, dtype=torch.int64).to(self.device, non_blocking=True)
        idx = self._offsets[dev[:, 1]] + dev[:, 0].view(-1, 1, 1, 1, 1)  # (B, C, Z, Y, X) flat positions
        return [torch.take(d, idx) for d in self.data]

    def _copy(self, data: np.ndarray, picks: list[tuple[int, tuple[int, int, int], int, bool]]) -> torch.Tensor:
        """The CPU's cut: turned and mirrored views of the patches, stacked by one copy (``data`` shares memory)."""
        pz, py, px = self.patch
        views = [dihedral(data[n, :, z : z + pz, y : y + py, x : x + px], k, f) for n, (z, y, x), k, f in picks]
        return torch.from_numpy(np.stack(views))


def dihedral(x: Any, k: int, flip: bool, inverse: bool = False) -> Any:
    """Rotate by ``k`` quarter turns, then mirror X if ``flip``, in the last two axes (``inverse`` undoes it).

    Works on numpy arrays (training augmentation) and torch tensors (test-time augmentation).
    """
    if isinstance(x, torch.Tensor):
        rot, mirror = (lambda a, n: torch.rot90(a, n, dims=(-2, -1))), (lambda a: torch.flip(a, dims=(-1,)))
    else:
        rot, mirror = (lambda a, n: np.rot90(a, n, axes=(-2, -1))), (lambda a: a[..., ::-1])
    if inverse:
        x = mirror(x) if flip else x
        return rot(x, -k) if k else x
    x = rot(x, k) if k else x
    return mirror(x) if flip else x
