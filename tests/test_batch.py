"""Batch denoising: streaming = in-memory, resume = clean run, inputs untouched, dask = local, bad files."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfsup_denoise import train
from napari_selfsup_denoise.batch import BatchOptions, Interrupted, Reporter, denoise_files
from napari_selfsup_denoise.batch.store import done_keys, plan_out
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.io import open_training_data, read_image

TINY = {"max_steps": 60, "patch_size": 32, "batch_size": 4, "base_channels": 8, "depth": 2, "seed": 0}
TINY["algorithm"] = "n2v"  # written for N2V, the default before "auto"


@pytest.fixture(scope="module")
def stack() -> np.ndarray:
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:150, 0:136].astype(np.float32)
    clean = 500 + 200 * np.sin(x / 9) * np.cos(y / 13)
    return (clean[None] + rng.normal(0, 40, (3, 150, 136))).astype(np.float32)


@pytest.fixture(scope="module")
def model_file(stack, tmp_path_factory) -> Path:
    return train(stack, axes="TYX", **TINY).save(tmp_path_factory.mktemp("m") / "tiny.sdmodel")


@pytest.fixture(scope="module")
def model(model_file):
    from napari_selfsup_denoise import load_model

    return load_model(model_file)


def _zarr(path: Path, data: np.ndarray, chunks=(1, 64, 64)) -> Path:
    arr = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype, dimension_names=list("tyx"))
    arr[:] = data
    return path


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def test_streaming_zarr_equals_in_memory_and_input_unchanged(tmp_path, stack, model):
    src = _zarr(tmp_path / "in.zarr", stack)
    before = _sha(src)
    res = denoise_files(model, [str(src)], str(tmp_path / "out.zarr"), BatchOptions(tile=32))
    assert [r.status for r in res] == ["done"]
    out = read_image(tmp_path / "out.zarr")
    assert out.axes == "TYX" and out.data.chunks == (1, 32, 32) and out.data.dtype == np.float32
    np.testing.assert_allclose(np.asarray(out.data), model.denoise(stack, "TYX"), atol=1e-4, rtol=1e-5)
    assert _sha(src) == before
    again = denoise_files(model, [str(src)], str(tmp_path / "out.zarr"), BatchOptions(tile=32))
    assert again[0].status == "failed" and "--overwrite" in again[0].reason


class _StopAfter(Reporter):
    def __init__(self, n: int, stop: threading.Event) -> None:
        self.n, self.stop, self.seen = n, stop, 0

    def file_advance(self, px: int) -> None:
        self.seen += 1
        if self.seen >= self.n:
            self.stop.set()


@pytest.mark.parametrize(("fmt", "one_window"), [("zarr", False), ("tiff", False), ("zarr", True)])
def test_interrupted_then_resumed_equals_clean_run(tmp_path, stack, model, fmt, one_window, monkeypatch):
    """``one_window``: a forward pass per tile, so the writer holds blocks to write them several at once."""
    if one_window:
        monkeypatch.setitem(predict_mod.MAX_BATCH, "cpu", 1)
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack, imagej=True, metadata={"axes": "TYX"})
    ext = ".zarr" if fmt == "zarr" else ".tif"
    opts = BatchOptions(tile=64, fmt=fmt)
    clean = denoise_files(model, [str(src)], str(tmp_path / f"clean{ext}"), opts)
    assert clean[0].status == "done"
    stop = threading.Event()
    with pytest.raises(Interrupted):
        denoise_files(model, [str(src)], str(tmp_path / f"part{ext}"), opts, reporter=_StopAfter(4, stop), stop=stop)
    refused = denoise_files(model, [str(src)], str(tmp_path / f"part{ext}"), opts)
    assert refused[0].status == "failed" and "--resume" in refused[0].reason
    counter = _StopAfter(10**6, threading.Event())
    res = denoise_files(model, [str(src)], str(tmp_path / f"part{ext}"), BatchOptions(tile=64, fmt=fmt, resume=True),
                        reporter=counter)  # fmt: skip
    assert res[0].status == "done" and counter.seen == 3 * 3 * 3 - 4  # only the missing units ran
    a, b = read_image(tmp_path / f"clean{ext}"), read_image(tmp_path / f"part{ext}")
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    skip = denoise_files(model, [str(src)], str(tmp_path / f"part{ext}"), BatchOptions(tile=64, fmt=fmt, resume=True))
    assert skip[0].status == "skipped"


def test_killed_process_resumed_equals_clean_run(tmp_path, stack, model, model_file):
    src = _zarr(tmp_path / "in.zarr", np.concatenate([stack] * 2))  # 6 frames x 3 x 3 units of 64
    cmd = [sys.executable, "-m", "napari_selfsup_denoise.cli", "denoise", "-m", str(model_file), str(src),
           "-o", str(tmp_path / "out.zarr"), "--tile", "64", "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    spec = plan_out(tmp_path / "out.zarr", "zarr")
    deadline = time.time() + 60
    while time.time() < deadline and len(done_keys(spec)) < 5:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(done_keys(spec))
    assert 5 <= n_done < 6 * 9
    res = denoise_files(model, [str(src)], str(tmp_path / "out.zarr"), BatchOptions(tile=64, resume=True))
    assert res[0].status == "done"
    clean = denoise_files(model, [str(src)], str(tmp_path / "clean.zarr"), BatchOptions(tile=64))
    assert clean[0].status == "done"
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "out.zarr"))[:], zarr.open_array(str(tmp_path / "clean.zarr"))[:]
    )


def test_dask_cluster_on_loopback_equals_local(tmp_path, stack, model, model_file):
    from distributed import LocalCluster

    src = _zarr(tmp_path / "in.zarr", stack)
    local = denoise_files(model, [str(src)], str(tmp_path / "local.zarr"), BatchOptions(tile=64))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        opts = BatchOptions(tile=64, scheduler=cluster.scheduler_address)
        dist = denoise_files(model, [str(src)], str(tmp_path / "dask.zarr"), opts, model_path=model_file)
    assert [local[0].status, dist[0].status] == ["done", "done"]
    a = zarr.open_array(str(tmp_path / "local.zarr"))[:]
    np.testing.assert_allclose(zarr.open_array(str(tmp_path / "dask.zarr"))[:], a, rtol=1e-6, atol=1e-5)  # float32 ulp


def test_corrupt_file_among_good_ones(tmp_path, stack, model):
    indir = tmp_path / "in"
    indir.mkdir()
    for name in ("a.tif", "c.tif"):
        tifffile.imwrite(indir / name, stack[:1], imagej=True, metadata={"axes": "TYX"})
    (indir / "b.tif").write_bytes(b"II*\x00garbage" * 20)
    res = denoise_files(model, [str(indir), str(tmp_path / "missing.tif")], str(tmp_path / "out"), BatchOptions())
    status = {Path(r.src).name: r.status for r in res}
    assert status == {"missing.tif": "failed", "a.tif": "done", "b.tif": "failed", "c.tif": "done"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "c.tif"]
    assert "TIFF" in next(r.reason for r in res if r.src.endswith("b.tif"))


def test_ome_zarr_output_has_same_axes_transforms_and_levels(tmp_path, stack, model):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, stack, imagej=True, resolution=(4.0, 4.0), metadata={"axes": "TYX", "unit": "um"})
    res = denoise_files(model, [str(src)], str(tmp_path / "out.ome.zarr"), BatchOptions(fmt="ome-zarr", levels=2))
    assert res[0].status == "done"
    out = read_image(tmp_path / "out.ome.zarr")
    assert (out.kind, out.axes, out.unit) == ("ome-zarr", "TYX", "micrometer")
    assert out.scale == pytest.approx({"T": 1.0, "Y": 0.25, "X": 0.25})
    assert zarr.open_group(str(tmp_path / "out.ome.zarr"))["1"].shape == (3, 75, 68)
    # denoising a denoised image is suspect (its residual is not the noise the model learned): accepted here
    opts = BatchOptions(accept_suspect=True)
    again = denoise_files(model, [str(tmp_path / "out.ome.zarr")], str(tmp_path / "again.ome.zarr"), opts)
    assert again[0].status == "done" and read_image(tmp_path / "again.ome.zarr").meta["levels"] == 2


def test_training_on_several_files_stacks_lazily(tmp_path, stack):
    paths = [str(_zarr(tmp_path / f"{i}.zarr", stack + i)) for i in range(2)]
    data, axes, images = open_training_data(paths, None)
    assert axes == "STYX" and data.shape == (2, 3, 150, 136)
    np.testing.assert_array_equal(data[1, 2, :5, :5], stack[2, :5, :5] + 1)
    m = train(data, axes=axes, **TINY)
    assert m.axes == "STYX" and m.summary["steps"] == 60
