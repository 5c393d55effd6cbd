"""CPU seconds per thread role while a function runs (Linux ``/proc``): where the Zarr rows' time goes.

Threads are sampled every 10 ms (a thread that lives less than that may be missed); each thread's CPU time
is counted from its first to its last sample and summed by role: the name of its Python thread without a
trailing number (``MainThread``, ``selfsup-read``, ``selfsup-write``, ``selfsup-put``, ``selfsup-check``,
``zarr_io`` (zarr's event loop), ``asyncio`` (zarr's codec threads), ...), or ``other`` (torch's threads).
On a machine with many cores, a role whose seconds approach the wall time is the one that bounds the row.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu() -> dict[int, float]:
    out = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / _TICK
    return out


def busy(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` once; its wall seconds and the CPU seconds of each thread role (empty where /proc is missing)."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    names: dict[int, str] = {}
    stop = threading.Event()

    def sample() -> None:
        while True:
            for t in threading.enumerate():
                if t.native_id is not None:
                    names[t.native_id] = re.sub(r"[_-]?\d+$", "", t.name) or t.name
            for tid, c in _cpu().items():
                first.setdefault(tid, c)
                last[tid] = c
            if stop.wait(0.01):
                return

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    try:
        fn()
    finally:
        wall = time.perf_counter() - t0
        stop.set()
        sampler.join()
    roles: dict[str, float] = {}
    for tid, c in last.items():
        role = names.get(tid, "other")
        if role != "bench-sampler":
            roles[role] = roles.get(role, 0.0) + c - first[tid]
    return {"wall_s": round(wall, 3), "busy_s": {k: round(v, 2) for k, v in sorted(roles.items(), key=lambda x: -x[1])}}
