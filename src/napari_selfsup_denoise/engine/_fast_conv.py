"""Two CPU paths of prediction: batch-1 3D convolutions through oneDNN, and host memory kept for reuse.

**3D convolutions at batch 1** run through oneDNN, where PyTorch would take its slow reference path.

PyTorch (checked on 2.13) hands a CPU ``conv3d`` with a kernel of at most 3 to oneDNN
only when the batch is above 1 or the input's first four sizes (batch x channels x
Z x Y) multiply to more than 20,480; otherwise it runs ``slow_conv3d``. Prediction,
the live preview and the self-checks run the network at batch 1 on windows that
often fall under that bound (16 channels x 40 x 28 planes and rows, or x 10 x 128),
and there ``slow_conv3d`` took 5-13x the time of oneDNN for the same convolution on
the development machine (one thread: 16 x 10 x 128 x 128, 3^3 kernel: 233 ms against
24 ms). Training batches are above 1 and are not affected; neither is 2D, where
PyTorch's choice was as fast as oneDNN. The result is the same convolution (float32
rounding: a maximum difference of 9e-5 on values of order 20).

**Host memory kept for reuse** (:func:`reuse_freed_memory`). glibc's allocator
maps every block above 128 kB afresh from the kernel and unmaps it when freed;
the kernel then zeroes every page again at its first write. One blind-spot
window (1248^2, depth 3, 32 channels) allocates and frees about 6 GB of feature
maps, and those page faults took 3.1 s of system time next to 5.6 s of
computation (one thread, development machine). Within the block large blocks
come from the allocator's heap and stay there when freed, so the next window's
maps reuse them: 0.01 s of system time (0.5-0.8 s where the memory went back
after every window). The memory goes back to the system a moment after the last
block ends. The same maths: only where the memory comes from changes. The cost
is fragmentation of the kept heap: a 2048^2 prediction's peak RSS rose from
1.43 to 1.65-1.82 GB (``SELFSUP_DENOISE_KEEP_MEMORY=0`` switches the reuse off).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

# PyTorch's bound: above it (batch x channels x Z x Y) a batch-1 conv3d already goes to oneDNN.
SLOW_PATH_BOUND = 20480


def _triple(v: Any) -> tuple[int, int, int] | None:
    if isinstance(v, int):
        return (v, v, v)
    if isinstance(v, (tuple, list)) and len(v) == 3 and all(isinstance(i, int) for i in v):
        return (int(v[0]), int(v[1]), int(v[2]))
    return None  # e.g. padding="same": left to PyTorch


def _onednn_conv3d(
    x: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
) -> torch.Tensor | None:
    """The convolution through oneDNN where PyTorch would choose ``slow_conv3d``; None elsewhere."""
    if not (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor)) or x.ndim != 5 or groups != 1:
        return None
    if x.device.type != "cpu" or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return None
    if x.shape[0] * x.shape[1] * x.shape[2] * x.shape[3] > SLOW_PATH_BOUND or x.shape[0] > 1:
        return None  # PyTorch goes to oneDNN itself
    if tuple(weight.shape[2:]) == (1, 1, 1) or max(weight.shape[-2:]) > 3:
        return None  # a pointwise convolution is faster on PyTorch's path; a larger kernel goes to oneDNN anyway
    pad, st, dil = _triple(padding), _triple(stride), _triple(dilation)
    if pad is None or st is None or dil is None:
        return None
    return torch.mkldnn_convolution(x.contiguous(), weight.contiguous(), bias, pad, st, dil, 1)


class _OneDNNConv3d(TorchFunctionMode):
    """Routes eligible ``conv3d`` calls (see :func:`_onednn_conv3d`) to oneDNN; everything else runs unchanged."""

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.conv3d and not torch.is_grad_enabled():
            out = _onednn_conv3d(*args, **kwargs)
            if out is not None:
                return out
        return func(*args, **kwargs)


def usable(device: torch.device, dtype: torch.dtype, ndim: int) -> bool:
    """Whether :func:`batch_one_conv3d` changes anything: 3D, float32 (no autocast) on a CPU with oneDNN."""
    mkldnn = torch.backends.mkldnn
    return bool(
        ndim == 3 and device.type == "cpu" and dtype == torch.float32 and mkldnn.is_available() and mkldnn.enabled
    )


@contextlib.contextmanager
def batch_one_conv3d(device: torch.device, dtype: torch.dtype, ndim: int) -> Iterator[None]:
    """Within the block, batch-1 3D convolutions without gradients on the CPU run through oneDNN."""
    if not usable(device, dtype, ndim):
        yield
        return
    with _OneDNNConv3d():
        yield


_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # mallopt's parameters (glibc's malloc.h)
_DEFAULT_TRIM, _DEFAULT_MMAP_MAX = 128 * 1024, 65536  # glibc's defaults
RELEASE_AFTER = 2.0  # seconds with no block open before the kept memory goes back (the next window comes sooner)
_KEEP_LOCK = threading.Lock()
_keepers = [0]  # blocks of reuse_freed_memory open in this process
_kept = [False]  # the policy is set (from the first block until the release after the last)
_idle_since = [0.0]  # when the last block ended (time.monotonic)
_releaser: list[threading.Thread | None] = [None]  # the thread that gives the memory back once idle


@functools.cache
def _glibc() -> Any | None:
    """The C library when it is glibc (``mallopt``, ``malloc_trim``); None elsewhere or if switched off.

    ``SELFSUP_DENOISE_KEEP_MEMORY=0`` switches the reuse off (peak memory then stays lower: see the module
    docstring).
    """
    if os.environ.get("SELFSUP_DENOISE_KEEP_MEMORY", "1") == "0":
        return None
    try:
        if sys.platform != "linux" or not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
            return None
        libc = ctypes.CDLL(None)
    except (OSError, ValueError):
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, large host blocks freed by tensors are kept by the allocator for the next ones.

    glibc only (elsewhere nothing changes). Blocks may nest and run in several threads. The policy holds
    until :data:`RELEASE_AFTER` seconds after the last one ends, so that consecutive windows' blocks reuse
    the same memory; then the freed memory goes back to the system (see the module docstring).
    """
    libc = _glibc()
    if libc is None:
        yield
        return
    with _KEEP_LOCK:
        _keepers[0] += 1
        if not _kept[0]:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
            _kept[0] = True
    try:
        yield
    finally:
        with _KEEP_LOCK:
            _keepers[0] -= 1
            if _keepers[0] == 0:
                _idle_since[0] = time.monotonic()
                if _releaser[0] is None:  # one thread per kept period, not one per block (blocks are per pass)
                    releaser = threading.Thread(target=_release_when_idle, name="release-kept-memory", daemon=True)
                    _releaser[0] = releaser
                    releaser.start()


def _release_when_idle() -> None:
    """Restore glibc's defaults and give the kept memory back once no block was open for :data:`RELEASE_AFTER` s."""
    libc = _glibc()
    while True:
        with _KEEP_LOCK:
            wait = RELEASE_AFTER if _keepers[0] else _idle_since[0] + RELEASE_AFTER - time.monotonic()
            if wait <= 0:
                if libc is not None and _kept[0]:
                    libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                    libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM)
                    libc.malloc_trim(0)
                _kept[0], _releaser[0] = False, None
                return
        time.sleep(wait)
