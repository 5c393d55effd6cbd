"""Batch outputs: --resume continues only the same run, failed inputs leave nothing that blocks the next (issue 10)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfsup_denoise import train
from napari_selfsup_denoise.batch import BatchOptions, Interrupted, OutputError, Reporter, denoise_files
from napari_selfsup_denoise.config import ConfigError
from napari_selfsup_denoise.io import read_image

TINY = {"max_steps": 2, "patch_size": 32, "batch_size": 2, "base_channels": 8, "depth": 2, "seed": 0}
TINY["algorithm"] = "n2v"  # written for N2V, the default before "auto"


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:64, 0:64].astype(np.float32)
    return (300 + 100 * np.sin(x / 5) * np.cos(y / 9) + rng.normal(0, 20, (3, 64, 64))).astype(np.float32)


@pytest.fixture(scope="module")
def model(frames):
    return train(frames, axes="TYX", **{**TINY, "max_steps": 150})  # passes its self-check (2 steps, or 100 with
    # the N2V warm-up of issue 9, do not)


def _tif(path: Path, data: np.ndarray) -> str:
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TYX"})
    return str(path)


def _zarr(path: Path, data: np.ndarray) -> None:
    arr = zarr.create_array(str(path), shape=data.shape, chunks=(1, 32, 32), dtype=data.dtype,
                            dimension_names=list("tyx"), overwrite=True)  # fmt: skip
    arr[:] = data


class _StopAfter(Reporter):
    def __init__(self, n: int, stop: threading.Event) -> None:
        self.n, self.stop, self.seen = n, stop, 0

    def file_advance(self, px: int) -> None:
        self.seen += 1
        if self.seen >= self.n:
            self.stop.set()


def _partial(model, src: str, out: str) -> None:
    stop = threading.Event()
    with pytest.raises(Interrupted):
        denoise_files(model, [src], out, BatchOptions(tile=32), reporter=_StopAfter(2, stop), stop=stop)


@pytest.mark.parametrize("ext", [".zarr", ".tif"])
def test_resume_refuses_a_partial_output_of_another_input(tmp_path, frames, model, ext):
    a, b = _tif(tmp_path / "a.tif", frames), _tif(tmp_path / "b.tif", frames[::-1].copy())
    out = str(tmp_path / f"out{ext}")
    _partial(model, a, out)
    res = denoise_files(model, [b], out, BatchOptions(tile=32, resume=True))
    assert res[0].status == "failed" and "input file (was" in res[0].reason and "input pixels" in res[0].reason
    assert "model" not in res[0].reason.split("different:")[1].split(")")[0]


@pytest.mark.parametrize("ext", [".zarr", ".tif"])
def test_resume_does_not_skip_a_complete_output_of_another_input(tmp_path, frames, model, ext):
    a = _tif(tmp_path / "a.tif", frames)
    out = str(tmp_path / f"out{ext}")
    assert denoise_files(model, [a], out, BatchOptions(tile=32))[0].status == "done"
    before = Path(a).stat()
    _tif(tmp_path / "a.tif", frames[::-1].copy())  # same path and shape, other pixels (frames + 50 made the
    # 150-step model's image check fail first: an offset it never saw; this test is about the resume record)
    res = denoise_files(model, [a], out, BatchOptions(tile=32, resume=True))
    assert res[0].status == "failed" and "input pixels" in res[0].reason and "input file" not in res[0].reason
    _tif(tmp_path / "a.tif", frames)
    os.utime(a, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same bytes and time: the same input again
    assert denoise_files(model, [a], out, BatchOptions(tile=32, resume=True))[0].status == "skipped"


def _edit_unsampled_pixel(path: Path, frames: np.ndarray, kind: str) -> None:
    """Change one pixel of ``path`` in a work unit the run record's pixel hash does not sample."""
    from napari_selfsup_denoise.batch.plan import unit_grid

    _, units = unit_grid(frames.shape, "TYX", 32, 2)
    sampled = {0, len(units) // 2, len(units) - 1}
    region = next(r for i, (_, r) in enumerate(units) if i not in sampled)
    edited = frames.copy()
    edited[tuple(s.start for s in region)] += 1
    if kind == "tif":
        mtime = path.stat().st_mtime_ns
        _tif(path, edited)
        if path.stat().st_mtime_ns == mtime:  # a file system with coarse times: the edit still comes later
            os.utime(path, ns=(mtime, mtime + 10**9))
    else:
        _zarr(path, edited)


@pytest.mark.parametrize("kind", ["tif", "zarr"])
def test_resume_refuses_an_input_edited_where_the_pixel_sample_does_not_look(tmp_path, frames, model, kind):
    src = tmp_path / f"a.{kind}"
    _tif(src, frames) if kind == "tif" else _zarr(src, frames)
    out = str(tmp_path / "out.zarr")
    _partial(model, str(src), out)
    _edit_unsampled_pixel(src, frames, kind)
    res = denoise_files(model, [str(src)], out, BatchOptions(tile=32, resume=True))
    assert res[0].status == "failed" and "input size or modification time" in res[0].reason, res[0].reason


def test_the_uncertainty_option_is_refused_by_the_batch_api(tmp_path, frames, model):
    src = _tif(tmp_path / "x.tif", frames)
    with pytest.raises(ConfigError, match="removed until it is calibrated"):
        denoise_files(model, [src], str(tmp_path / "o.tif"), BatchOptions(uncertainty=True))
    assert [p.name for p in tmp_path.iterdir()] == ["x.tif"]


def test_resume_summary_counts_only_the_pixels_computed(tmp_path, frames, model):
    a, out = _tif(tmp_path / "a.tif", frames), str(tmp_path / "out.zarr")
    _partial(model, a, out)
    res = denoise_files(model, [a], out, BatchOptions(tile=32, resume=True))
    assert res[0].status == "done" and res[0].megapixels == round((3 * 64 * 64 - 2 * 32 * 32) / 1e6, 3)


def test_failed_input_leaves_nothing_that_blocks_the_next_run(tmp_path, frames, model):
    bad = frames[:1].copy()
    bad[0, 5, 5] = np.nan
    out = tmp_path / "o.tif"
    res = denoise_files(model, [_tif(tmp_path / "bad.tif", bad)], str(out), BatchOptions(tile=64))
    assert res[0].status == "failed" and "NaN" in res[0].reason
    assert not out.exists() and not list(tmp_path.glob(".o.tif*"))
    res = denoise_files(model, [_tif(tmp_path / "good.tif", frames)], str(out), BatchOptions(tile=64))
    assert res[0].status == "done"


class _FailAfter(Reporter):
    def __init__(self, n: int) -> None:
        self.n = n

    def file_advance(self, px: int) -> None:
        self.n -= 1
        if not self.n:
            raise OSError(28, "No space left on device")


def test_failure_after_some_chunks_says_how_to_continue(tmp_path, frames, model):
    src, out = _tif(tmp_path / "a.tif", frames), str(tmp_path / "o.tif")
    res = denoise_files(model, [src], out, BatchOptions(tile=64), reporter=_FailAfter(2))
    assert res[0].status == "failed" and "No space left" in res[0].reason
    assert "2 of 3 chunks are kept" in res[0].reason and "--resume" in res[0].reason
    assert denoise_files(model, [src], out, BatchOptions(tile=64, resume=True))[0].status == "done"


def test_uncertainty_output_may_not_be_the_input(tmp_path, frames):
    from napari_selfsup_denoise.batch.runner import plan_outputs

    src = _tif(tmp_path / "x_uncertainty.tif", frames)
    img = read_image(src)
    try:
        with pytest.raises(OutputError, match="uncertainty output .* input"):
            plan_outputs(img, str(tmp_path / "x.tif"), False, BatchOptions(uncertainty=True, overwrite=True))
    finally:
        img.close()


def test_a_write_failing_in_the_writer_thread_is_a_clear_failure_that_resumes(tmp_path, frames, model, monkeypatch):
    """The writer thread's second zarr write fails (disk full): a failed file, no hang, no thread left; resume works.

    (3 frames of 64² in 32² tiles: 12 blocks, written in two calls of 8 and 4.)
    """
    from napari_selfsup_denoise.engine import sink as pipeline  # the writes moved to engine/sink.py (session 11)

    src, out = str(tmp_path / "a.zarr"), str(tmp_path / "o.zarr")
    _zarr(Path(src), frames)
    calls, writer = [0], set()
    real_one, real_many = pipeline.write_block, pipeline.write_blocks

    def failing(real):
        def write(*args):
            writer.add(threading.current_thread().name)
            calls[0] += 1
            if calls[0] == 2:
                raise OSError(28, "No space left on device")
            return real(*args)

        return write

    monkeypatch.setattr(pipeline, "write_block", failing(real_one))
    monkeypatch.setattr(pipeline, "write_blocks", failing(real_many))
    t0 = time.monotonic()
    res = denoise_files(model, [src], out, BatchOptions(tile=32))
    assert time.monotonic() - t0 < 30
    assert any(name.startswith("selfsup-") for name in writer)  # the failure was in the writer thread
    assert res[0].status == "failed" and "No space left" in res[0].reason and "--resume" in res[0].reason
    assert "8 of 12 chunks are kept" in res[0].reason
    assert not [t for t in threading.enumerate() if t.name.startswith("selfsup-")]
    monkeypatch.setattr(pipeline, "write_block", real_one)
    monkeypatch.setattr(pipeline, "write_blocks", real_many)
    assert denoise_files(model, [src], out, BatchOptions(tile=32, resume=True))[0].status == "done"
    clean = str(tmp_path / "clean.zarr")
    denoise_files(model, [src], clean, BatchOptions(tile=32))
    np.testing.assert_array_equal(zarr.open_array(out)[:], zarr.open_array(clean)[:])
