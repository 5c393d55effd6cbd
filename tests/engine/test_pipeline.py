"""The prediction pipeline (prefetch, batched forwards, write-behind) equals the simple path and fails cleanly."""

import threading
import time

import numpy as np
import pytest
import torch
from pipeline_helpers import run as _run  # tests/engine is on the path (pytest's rootdir-less import mode)
from pipeline_helpers import tiny_model as _model

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import pipeline as pipeline_mod
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import DataError
from napari_selfsup_denoise.engine.device import autocast, pick_device
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.stages import Prefetch, WriteBehind


def _simple(model: Model, img: np.ndarray) -> np.ndarray:
    """Whole-image pass without the pipeline: mirror, normalise, one forward, crop, de-normalise (numpy).

    On the device the network lives on (where a prediction left it), at true fp32 (on CUDA: TF32 off).
    """
    m, k = model.margin, model.multiple
    pads = [(m, m + (-n) % k) for n in img.shape]
    x = torch.from_numpy(((np.pad(img, pads, mode="reflect") - 10.0) / 3.0)[None, None].astype(np.float32))
    device = next(model.net.parameters()).device
    with torch.inference_mode(), autocast(device, torch.float32):
        res = model.method.infer(model.net, x.to(device), PredictConfig())
    core = tuple(slice(m, m + n) for n in img.shape)
    return res["denoised"][0, 0].cpu().numpy()[core] * 3.0 + 10.0


@pytest.mark.parametrize("algorithm", ["n2v", "blindspot"])
def test_pipeline_equals_simple_whole_image_pass(algorithm):
    model = _model(algorithm)
    img = np.random.default_rng(0).normal(10, 3, (70, 90)).astype(np.float32)
    np.testing.assert_allclose(_run(model, img, 16), _simple(model, img), atol=1e-4)


@pytest.mark.parametrize("shape", [(5, 7), (4, 40), (1, 12, 10), (2, 9, 4)])
def test_tiny_and_one_pixel_axes_are_mirrored_like_numpy(shape):
    model = _model(ndim=len(shape))
    img = np.random.default_rng(3).normal(10, 3, shape).astype(np.float32)
    np.testing.assert_allclose(_run(model, img, 16), _simple(model, img), atol=1e-4)


def test_several_tiles_per_forward_equal_one_at_a_time(monkeypatch):
    model = _model()
    img = np.random.default_rng(1).normal(10, 3, (5, 40, 52)).astype(np.float32)  # small frames of a time-lapse
    events = []
    batched = drain(
        predict_mod.predict(model, img, PredictConfig(tile=64, precision="fp32"), axes="TYX"), events.append
    )
    assert events[0].info["batch"] == 5  # all frames in one forward pass
    monkeypatch.setitem(predict_mod.MAX_BATCH, pick_device("auto").type, 1)  # where "auto" runs it
    events.clear()
    single = drain(predict_mod.predict(model, img, PredictConfig(tile=64, precision="fp32"), axes="TYX"), events.append)
    assert events[0].info["batch"] == 1
    np.testing.assert_allclose(batched, single, atol=1e-5)


class _Failing:
    """An array-like that fails after ``n`` reads or writes."""

    def __init__(self, shape, n):
        self.shape, self.dtype, self.n = shape, np.dtype(np.float32), n

    def _tick(self):
        self.n -= 1
        if self.n < 0:
            raise OSError("disk gone")

    def __getitem__(self, ix):
        self._tick()
        return np.full([len(range(*s.indices(n))) for s, n in zip(ix, self.shape)], 10.0, np.float32)

    def __setitem__(self, ix, value):
        self._tick()


@pytest.mark.parametrize("where", ["reader", "writer"])
def test_thread_errors_surface_and_do_not_hang(where):
    model = _model()
    src = _Failing((96, 96), 3) if where == "reader" else np.zeros((96, 96), np.float32)
    out = _Failing((96, 96), 3) if where == "writer" else None
    t0 = time.monotonic()
    with pytest.raises(OSError, match="disk gone"):
        _run(model, src, 16, out=out)
    assert time.monotonic() - t0 < 30
    assert not [t for t in threading.enumerate() if t.name.startswith("selfsup-")]


def test_nan_found_by_the_reader_is_a_data_error():
    img = np.full((64, 64), 10.0, np.float32)
    img[40, 3] = np.nan
    with pytest.raises(DataError, match="NaN"):
        _run(_model(), img, 16)


def test_stages_do_not_hang_when_the_consumer_leaves_early():
    reader = Prefetch(range(1000), lambda i: i * i, depth=2)
    assert [v for _, v in zip(range(3), reader)] == [(0, 0), (1, 1), (2, 4)]
    reader.close()
    seen = []
    writer = WriteBehind(lambda i: seen.append(i) or i, depth=1)
    for i in range(5):
        writer.submit(i)
    assert sorted(list(writer.drain()) + []) == list(range(5)) or seen == list(range(5))
    writer.close()
    assert seen == list(range(5))


@pytest.mark.parametrize("ndim", [2, 3])
def test_blindspot_prediction_path_is_the_training_maths(ndim):
    """Without gradients the net runs its directions one at a time and in place; the output must not change."""
    cfg = resolve_defaults(
        TrainConfig(algorithm="blindspot", depth=2 if ndim == 2 else 1, base_channels=8, axes="ZYX"[3 - ndim :])
    )
    torch.manual_seed(0)
    net = get_method(cfg).build(ndim, 2).eval()
    x = torch.randn((2, 2, 40, 32) if ndim == 2 else (1, 2, 8, 16, 12))
    with torch.enable_grad():
        train_path = net(x).detach()
    with torch.inference_mode():
        predict_path = net(x)
    torch.testing.assert_close(predict_path, train_path, atol=1e-6, rtol=1e-6)


def test_cpu_batches_hold_no_more_than_one_batch_unit_window():
    """Host memory stays flat: off CUDA several windows share a pass only while they are small."""
    model = _model()
    cpu = torch.device("cpu")
    m = model.margin
    assert predict_mod.tiles_per_forward(model, cpu, False, (512 + 2 * m,) * 2) == 1
    assert predict_mod.tiles_per_forward(model, cpu, False, (256 + 2 * m,) * 2) >= 2
    assert predict_mod.tiles_per_forward(model, cpu, False, (16 + 2 * m,) * 2) == predict_mod.MAX_BATCH["cpu"]


class _Plain:
    """A numpy array behind a plain array-like: the pipeline then reads it in its reader thread."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape, self.dtype = a, a.shape, a.dtype

    def __getitem__(self, ix):
        return self.a[ix]


def test_in_memory_prediction_in_the_calling_thread_equals_the_threaded_pipeline(monkeypatch):
    model = _model()
    img = np.random.default_rng(6).normal(10, 3, (3, 70, 90)).astype(np.float32)
    started = []
    monkeypatch.setattr(pipeline_mod, "Prefetch", lambda *a, **k: started.append(1) or Prefetch(*a, **k))
    inline = _run(model, img, 32, "cpu", axes="TYX")  # (a GPU always overlaps the copies in threads)
    assert not started  # numpy in, numpy out on the CPU: no threads
    threaded = _run(model, _Plain(img), 32, "cpu", axes="TYX")
    assert started
    np.testing.assert_array_equal(inline, threaded)
