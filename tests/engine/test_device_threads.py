"""How many CPU threads the engine takes (issue 10, item 11)."""

from __future__ import annotations

import os

import pytest
import torch

from napari_selfsup_denoise.config import ConfigError
from napari_selfsup_denoise.engine import device


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch):
    """``cores(n)``: pretend the process may run on ``n`` cores; no env override, no UI core reserved."""
    monkeypatch.delenv("SELFSUP_DENOISE_THREADS", raising=False)
    monkeypatch.setattr(device, "_ui_threads", 0)
    torch_threads = torch.get_num_threads()

    def _cores(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)

    yield _cores
    torch.set_num_threads(torch_threads)


@pytest.mark.parametrize(("n", "ui", "expected"), [(8, False, 8), (8, True, 7), (2, True, 1), (1, True, 1)])
def test_threads_follow_the_cores_the_process_may_use(cores, n, ui, expected):
    cores(n)
    device.reserve_ui_thread(ui)
    assert device.thread_count() == expected


def test_configure_threads_sets_torch(cores):
    cores(3)
    assert device.configure_threads() == 3 and torch.get_num_threads() == 3


def test_environment_overrides_the_choice(cores, monkeypatch):
    cores(8)
    device.reserve_ui_thread()
    monkeypatch.setenv("SELFSUP_DENOISE_THREADS", "2")
    assert device.thread_count() == 2


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5"])
def test_a_bad_environment_value_is_a_plain_error(cores, monkeypatch, value):
    monkeypatch.setenv("SELFSUP_DENOISE_THREADS", value)
    with pytest.raises(ConfigError, match="SELFSUP_DENOISE_THREADS must be a whole number"):
        device.thread_count()
