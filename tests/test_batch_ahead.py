"""The self-check beside the first units: the output of a run that waits for it; nothing kept when it refuses."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from batch_helpers import UNITS, tiny_n2v, tiny_stack  # tests/ is on the path (rootdir-less import mode)
from napari_selfsup_denoise.batch import BatchOptions, Reporter, denoise_files
from napari_selfsup_denoise.batch import runner as runner_mod
from napari_selfsup_denoise.engine.checks import decide
from napari_selfsup_denoise.engine.data import DataError
from napari_selfsup_denoise.engine.model import Model


@pytest.fixture(scope="module")
def model() -> Model:
    return tiny_n2v()


@pytest.fixture()
def src(tmp_path) -> Path:
    return tiny_stack(tmp_path)


class _Units(Reporter):
    def __init__(self) -> None:
        self.seen = 0

    def file_advance(self, px: int) -> None:
        self.seen += 1


def _late(monkeypatch, rep: _Units, then) -> dict:
    """Make the self-check return ``then(model, image, axes, output)`` only once a unit is written (or after 20 s)."""
    seen: dict = {}

    def slow(*args, **kwargs):
        t0 = time.monotonic()
        while not rep.seen and time.monotonic() - t0 < 20:
            time.sleep(0.005)
        seen["units_before_verdict"] = rep.seen
        return then(*args, **kwargs)

    monkeypatch.setattr(runner_mod, "decide", slow)
    return seen


def _opts(**kw) -> BatchOptions:
    return BatchOptions(axes="TYX", tile=32, **kw)


def test_the_check_runs_beside_the_units_with_the_output_of_a_run_that_waits(tmp_path, model, src, monkeypatch):
    rep = _Units()
    seen = _late(monkeypatch, rep, decide)
    res = denoise_files(model, [str(src)], str(tmp_path / "a.zarr"), _opts(accept_suspect=True), reporter=rep)
    assert res[0].status == "done" and seen["units_before_verdict"] >= 1  # units ran before the verdict
    monkeypatch.setattr(runner_mod, "can_check_ahead", lambda *a: False)  # the check first, as before
    res = denoise_files(model, [str(src)], str(tmp_path / "b.zarr"), _opts(accept_suspect=True))
    assert res[0].status == "done"
    a, b = (zarr.open_array(str(tmp_path / n), mode="r") for n in ("a.zarr", "b.zarr"))
    np.testing.assert_array_equal(a[:], b[:])
    ra, rb = (dict(x.attrs["selfsup_denoise"]) for x in (a, b))
    assert ra["self_check"] == rb["self_check"] and ra["self_check"] and ra["fingerprint"] == rb["fingerprint"]


def test_a_suspect_verdict_after_units_ran_leaves_nothing(tmp_path, model, src, monkeypatch):
    rep = _Units()
    # the check sees an image 100 times brighter than the model's training data: suspect. Its verdict is worked out
    # here, so that it arrives as soon as the first unit is written (computed then, under load, it could come after
    # the last unit, and "stopped early" would not be tested)
    img = zarr.open_array(str(src), mode="r")[:]
    verdict = decide(model, img * 100.0, "TYX", "posterior")
    assert verdict.suspect
    seen = _late(monkeypatch, rep, lambda *_a, **_k: verdict)
    out = tmp_path / "out.zarr"
    res = denoise_files(model, [str(src)], str(out), _opts(), reporter=rep)
    assert seen["units_before_verdict"] >= 1
    assert res[0].status == "suspect" and "Nothing was written" in res[0].reason
    assert not out.exists() and rep.seen < UNITS  # stopped within a unit of the verdict, its output removed


def test_an_error_of_the_check_fails_the_file_and_leaves_nothing(tmp_path, model, src, monkeypatch):
    rep = _Units()

    def fail(*args):
        raise DataError("the check failed here")

    seen = _late(monkeypatch, rep, fail)
    out = tmp_path / "out.zarr"
    res = denoise_files(model, [str(src)], str(out), _opts(accept_suspect=True), reporter=rep)
    assert seen["units_before_verdict"] >= 1
    assert res[0].status == "failed" and "the check failed here" in res[0].reason and not out.exists()


def test_another_output_decided_after_units_ran_is_run_again_with_it(tmp_path, model, src, monkeypatch):
    rep = _Units()
    seen = _late(monkeypatch, rep, lambda *a: dataclasses.replace(decide(*a), output="prior"))
    out = tmp_path / "out.zarr"
    res = denoise_files(model, [str(src)], str(out), _opts(accept_suspect=True), reporter=rep)
    assert seen["units_before_verdict"] >= 1 and res[0].status == "done"
    rec = dict(zarr.open_array(str(out), mode="r").attrs["selfsup_denoise"])
    monkeypatch.setattr(runner_mod, "decide", lambda *a, **k: dataclasses.replace(decide(*a, **k), output="prior"))
    monkeypatch.setattr(runner_mod, "can_check_ahead", lambda *a: False)
    res = denoise_files(model, [str(src)], str(tmp_path / "b.zarr"), _opts(accept_suspect=True))
    assert (
        rec["fingerprint"]
        == dict(zarr.open_array(str(tmp_path / "b.zarr"), mode="r").attrs["selfsup_denoise"])["fingerprint"]
    )  # the record of the output decided, not of the one computed first


def test_no_check_goes_on_after_its_file_failed(tmp_path, model, src, monkeypatch):
    def slow(*args):
        time.sleep(0.5)
        return decide(*args)

    def broken(*args, **kwargs):
        raise OSError("no space for the output")

    monkeypatch.setattr(runner_mod, "decide", slow)
    monkeypatch.setattr(runner_mod._store, "prepare", broken)
    res = denoise_files(model, [str(src)], str(tmp_path / "out.zarr"), _opts(accept_suspect=True))
    assert res[0].status == "failed" and "no space" in res[0].reason
    assert not [t for t in threading.enumerate() if t.name == "selfsup-check"]
