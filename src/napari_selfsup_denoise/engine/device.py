"""Device choice (cuda -> mps -> cpu), precision, CPU threads, and free memory."""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch

from ..config import ConfigError


def pick_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``name``.

    ``auto`` picks CUDA, then Apple's MPS, then the CPU. An explicit device that
    is not available raises a ``ConfigError`` (a ``ValueError``) that says which ones are.
    """
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_ok():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; {available()}")
    if name == "mps" and not _mps_ok():
        raise ConfigError(f"device 'mps' asked for but MPS is not available; {available()}")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; {available()}") from exc


def _mps_ok() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available() -> str:
    """A sentence listing the usable devices."""
    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.insert(0, "cuda")
    if _mps_ok():
        devs.insert(0, "mps")
    return "available: " + ", ".join(devs)


@functools.lru_cache(maxsize=1)
def cpu_has_amx() -> bool:
    """True when the CPU has AMX bf16 tiles (fast bf16 matrix work)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            return "amx_bf16" in fh.read()
    except OSError:
        return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """Compute dtype for autocast: bf16 on CUDA and AMX CPUs under ``auto``, else fp32."""
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32":
        return torch.float32
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_amx():
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Autocast to ``dtype`` on ``device``; fp32 on CUDA means true fp32 (TF32 off)."""
    if dtype == torch.float32 and device.type == "cuda":
        old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old
        return
    if dtype == torch.float32 or device.type not in ("cpu", "cuda"):
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


_ui_threads = 0  # cores left to a user-interface thread of this process (see reserve_ui_thread)


def reserve_ui_thread(on: bool = True) -> None:
    """Leave one core to this process's user-interface thread (napari's event loop) from now on.

    Parameters
    ----------
    on : bool
        False gives the core back to the engine.
    """
    global _ui_threads
    _ui_threads = 1 if on else 0


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which taskset and batch schedulers set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_count() -> int:
    """Threads for intra-op work: ``SELFSUP_DENOISE_THREADS``, else the available cores less a reserved UI core.

    Raises
    ------
    ConfigError
        ``SELFSUP_DENOISE_THREADS`` is not a whole number >= 1.
    """
    env = os.environ.get("SELFSUP_DENOISE_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"SELFSUP_DENOISE_THREADS must be a whole number >= 1, got {env!r}")
        return int(env)
    return max(1, available_cores() - _ui_threads)


def configure_threads() -> int:
    """Set torch's intra-op thread count to :func:`thread_count`; return it."""
    n = thread_count()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def describe(device: torch.device, dtype: torch.dtype) -> str:
    """Human-readable device and precision, e.g. ``cuda (NVIDIA H100, bf16)``."""
    prec = "bf16" if dtype == torch.bfloat16 else "fp32"
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)}, {prec})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads, {prec})"
    return f"{device.type} ({prec})"


def is_oom(exc: BaseException) -> bool:
    """True for out-of-memory errors of torch (CUDA or CPU) and Python."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    msg = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate" in msg)


def module_device(net: torch.nn.Module) -> str:
    """The device ``net``'s parameters live on (``"cpu"`` for a network without parameters)."""
    first = next(net.parameters(), None)
    return "cpu" if first is None else str(first.device)


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device`` (CUDA: free device memory; else available RAM)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3
