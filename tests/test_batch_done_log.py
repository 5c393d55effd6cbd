"""Batch outputs: finished chunks in one appended log (read on resume with older marker files), dense chunk writes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import zarr

from batch_helpers import UNITS, tiny_n2v, tiny_stack  # tests/ is on the path (rootdir-less import mode)
from napari_selfsup_denoise.batch import BatchOptions, Interrupted, Reporter, denoise_files
from napari_selfsup_denoise.batch.store import DONE_LOG, DoneLog, dense, done_keys, plan_out
from napari_selfsup_denoise.engine.model import Model


@pytest.fixture(scope="module")
def model() -> Model:
    return tiny_n2v()


@pytest.fixture()
def src(tmp_path) -> Path:
    return tiny_stack(tmp_path)


class _Count(Reporter):
    """Counts finished units; sets ``stop`` after ``n``."""

    def __init__(self, n: int = 10**6) -> None:
        self.n, self.seen, self.stop = n, 0, threading.Event()

    def file_advance(self, px: int) -> None:
        self.seen += 1
        if self.seen >= self.n:
            self.stop.set()


def _opts(**kw) -> BatchOptions:
    return BatchOptions(axes="TYX", tile=32, accept_suspect=True, **kw)  # an untrained net: "suspect"


def _interrupted(model: Model, src: Path, out: Path, after: int) -> set[str]:
    rep = _Count(after)
    with pytest.raises(Interrupted):
        denoise_files(model, [str(src)], str(out), _opts(), reporter=rep, stop=rep.stop)
    return done_keys(plan_out(out, "zarr"))


def _resume_equals_clean(model: Model, src: Path, out: Path, tmp_path: Path, kept: int) -> None:
    rep = _Count()
    res = denoise_files(model, [str(src)], str(out), _opts(resume=True), reporter=rep)
    assert res[0].status == "done" and rep.seen == UNITS - kept  # only the missing units ran
    clean = denoise_files(model, [str(src)], str(tmp_path / "clean.zarr"), _opts())
    assert clean[0].status == "done"
    np.testing.assert_array_equal(zarr.open_array(str(out))[:], zarr.open_array(str(tmp_path / "clean.zarr"))[:])


def test_a_local_run_records_finished_chunks_in_one_log_not_a_file_each(tmp_path, model, src):
    out = tmp_path / "out.zarr"
    keys = _interrupted(model, src, out, after=4)
    assert [p.name for p in (out / ".selfsup_done").iterdir()] == [DONE_LOG]  # was one empty file per chunk
    assert len(keys) == 4
    _resume_equals_clean(model, src, out, tmp_path, kept=4)
    assert not (out / ".selfsup_done").exists()  # removed with the log when the output is complete


def test_an_unfinished_output_with_a_marker_file_per_chunk_still_resumes(tmp_path, model, src):
    out = tmp_path / "out.zarr"
    keys = _interrupted(model, src, out, after=5)
    done = out / ".selfsup_done"
    (done / DONE_LOG).unlink()  # as the versions before the log left it: an empty file per finished chunk
    for key in keys:
        (done / key).touch()
    _resume_equals_clean(model, src, out, tmp_path, kept=5)


def test_a_line_cut_short_by_a_crash_is_never_read_as_a_finished_chunk(tmp_path):
    spec = plan_out(tmp_path / "out.zarr", "zarr")
    with DoneLog(spec.done_dir) as log:
        log.mark("0.1.2")
    with open(spec.done_dir / DONE_LOG, "ab") as f:
        f.write(b"0.1.1")  # "0.1.12\n" cut short: its first bytes are another chunk's key
    assert done_keys(spec) == {"0.1.2"}
    with DoneLog(spec.done_dir) as log:  # the next run appends after the cut line
        log.mark("0.2.0")
    assert done_keys(spec) == {"0.1.2", "0.2.0"}
    (spec.done_dir / "0.0.3").touch()  # a marker file (dask workers, older versions) counts too
    assert done_keys(spec) == {"0.1.2", "0.2.0", "0.0.3"}


def test_outputs_store_every_chunk_without_comparing_it_with_the_fill_value(tmp_path, model, src, monkeypatch):
    """Zarr compares each written chunk with the fill value unless told the data is dense: ~0.6 ms per 512^2
    float32 chunk, one chunk after another in its event loop. Created and resumed outputs skip it."""
    from zarr.core.buffer.core import NDBuffer

    compared = []
    real = NDBuffer.all_equal
    monkeypatch.setattr(NDBuffer, "all_equal", lambda self, *a, **k: compared.append(1) or real(self, *a, **k))
    out = tmp_path / "out.zarr"
    _interrupted(model, src, out, after=4)
    res = denoise_files(model, [str(src)], str(out), _opts(resume=True))
    assert res[0].status == "done"
    assert compared == []  # was one comparison per chunk written: 27
    zeros = dense(zarr.create_array(str(tmp_path / "z.zarr"), shape=(4, 4), chunks=(2, 2), dtype="f4", fill_value=0))
    zeros[:2] = 0.0  # a chunk of only the fill value is stored, and reads the same
    assert sorted(p.name for p in (tmp_path / "z.zarr" / "c" / "0").iterdir()) == ["0", "1"]  # was omitted
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "z.zarr"))[:], np.zeros((4, 4), "f4"))
