"""Batch runs on many cores: zarr's per-call concurrency grows with the cores inside a run, and is restored after."""

from __future__ import annotations

import pytest

from napari_selfsup_denoise.batch import local


def test_zarr_concurrency_grows_with_the_cores_inside_a_run_only(monkeypatch):
    zarr = pytest.importorskip("zarr")
    before = zarr.config.get("async.concurrency")
    monkeypatch.setattr(local.os, "cpu_count", lambda: 16)
    with local.zarr_concurrency():
        assert zarr.config.get("async.concurrency") == max(before, 32)
    assert zarr.config.get("async.concurrency") == before
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    with local.zarr_concurrency():
        assert zarr.config.get("async.concurrency") == before  # never below zarr's own setting
