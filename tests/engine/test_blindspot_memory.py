"""Blind-spot prediction keeps freed host memory for the next window's maps (glibc), and gives it back after."""

from __future__ import annotations

import ctypes
import itertools
import os
import threading

import pytest
import torch

from napari_selfsup_denoise.engine import _fast_conv

# Bytes of each test allocation: far above glibc's 128 kB mapping threshold, and doubling, so that no block
# freed before (alone or merged with its neighbours) can serve it.
_SIZES = (16 << 20 << i for i in itertools.count())


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _mapped() -> int:
    """Bytes the allocator holds in blocks mapped one by one from the kernel (unmapped when freed)."""
    libc = _fast_conv._glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("glibc's mallinfo2 is needed to see where blocks come from")
    libc.mallinfo2.restype = _MallInfo2
    return int(libc.mallinfo2().hblkhd)


def _fresh_block_is_mapped() -> bool:
    """Whether a new large tensor's memory is mapped for it alone (the default) rather than taken from the heap."""
    size = next(_SIZES)
    before = _mapped()
    t = torch.empty(size // 4)
    grown = _mapped() - before
    del t
    assert grown in (0, size) or grown >= size
    return grown >= size


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_large_blocks_come_from_the_kept_heap_only_inside_the_block():
    assert _fresh_block_is_mapped()
    with _fast_conv.reuse_freed_memory():
        assert not _fresh_block_is_mapped()
        with _fast_conv.reuse_freed_memory():  # nested: the inner end keeps the policy
            pass
        assert not _fresh_block_is_mapped()
    assert _fresh_block_is_mapped()  # the last block's end restores the default


def test_the_last_end_gives_the_kept_memory_back():
    with _fast_conv.reuse_freed_memory():
        t = torch.ones(64 << 20 >> 2)  # 64 MB, written, freed: kept by the process
        del t
        kept = _resident()
    assert kept - _resident() >= 32 << 20


def test_the_policy_holds_until_the_last_thread_leaves():
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with _fast_conv.reuse_freed_memory():
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other)
    worker.start()
    assert inside.wait(10)
    with _fast_conv.reuse_freed_memory():
        pass
    assert not _fresh_block_is_mapped()  # the other thread's block is still open
    leave.set()
    worker.join()
    assert _fresh_block_is_mapped()


def test_the_network_pass_of_prediction_runs_inside_the_block(monkeypatch):
    from napari_selfsup_denoise import PredictConfig, TrainConfig
    from napari_selfsup_denoise.config import resolve_defaults
    from napari_selfsup_denoise.engine.methods import blindspot, get_method

    method = get_method(resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX", depth=1, base_channels=4), 2))
    net = method.build(2, 1).eval()
    seen: list[int] = []
    split = blindspot.BlindSpotMethod._split

    def spy(self, *args, **kwargs):  # the blocks open while the network runs
        seen.append(_fast_conv._keepers[0])
        return split(self, *args, **kwargs)

    monkeypatch.setattr(blindspot.BlindSpotMethod, "_split", spy)
    x = torch.randn(1, 1, 8 + 2 * net.margin, 16 + 2 * net.margin)
    with torch.inference_mode():
        out = method.infer(net, x, PredictConfig(), margin=net.margin)
    assert seen == [1] and _fast_conv._keepers[0] == 0
    assert out["denoised"].shape == (1, 1, 8, 16)
