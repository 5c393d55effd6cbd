"""Tiled prediction is exact: it does not depend on the tile size, so tiles have no seams."""

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import pipeline as pipeline_mod
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.device import pick_device
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model


def _random_model(ndim: int, channels: int = 1, algorithm: str = "n2v", depth: int = 2) -> Model:
    cfg = resolve_defaults(
        TrainConfig(algorithm=algorithm, depth=depth, base_channels=8, axes="ZYX" if ndim == 3 else "YX")
    )
    torch.manual_seed(0)
    net = get_method(cfg).build(ndim, channels).eval()
    norm = Normalisation("meanstd", (10.0,) * channels, (3.0,) * channels)
    return Model(net, cfg, cfg.axes or "YX", ndim, channels, norm)


def _predict(model, image, tile, axes=None, **kw):
    return drain(predict_mod.predict(model, image, PredictConfig(tile=tile, precision="fp32", **kw), axes=axes))


@pytest.mark.parametrize("algorithm", ["n2v", "n2v2"])
def test_tiled_equals_whole_image_2d_odd_shape(algorithm):
    model = _random_model(2, algorithm=algorithm)
    img = np.random.default_rng(0).normal(10, 3, (77, 101)).astype(np.float32)
    whole = _predict(model, img, tile=512)
    tiled = _predict(model, img, tile=16)
    assert whole.shape == img.shape and whole.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-4)


def test_tiled_equals_whole_image_3d_odd_shape():
    model = _random_model(3)
    img = np.random.default_rng(1).normal(10, 3, (13, 37, 29)).astype(np.float32)
    np.testing.assert_allclose(_predict(model, img, tile=8), _predict(model, img, tile=256), atol=1e-4)


def test_no_seam_at_tile_borders():
    """The step across a tile border is no larger than steps elsewhere in a smooth image."""
    model = _random_model(2)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32)
    img = 10 + np.sin(xx / 9) + np.cos(yy / 11)
    out = _predict(model, img, tile=32)
    jumps = np.abs(np.diff(out, axis=1))
    at_border = jumps[:, [31, 63]].max()
    assert at_border <= jumps.max() + 1e-6 and at_border < 4 * np.median(jumps) + 1e-3


def test_tta_and_multichannel_and_time_axis():
    model = _random_model(2, channels=2)
    img = np.random.default_rng(2).normal(10, 3, (3, 2, 40, 48)).astype(np.float32)  # T C Y X
    a = _predict(model, img, tile=16, axes="TCYX", tta=True)
    b = _predict(model, img, tile=64, axes="TCYX", tta=True)
    assert a.shape == img.shape
    np.testing.assert_allclose(a, b, atol=1e-4)
    one = _predict(model, img[1], tile=64, axes="CYX", tta=True)
    np.testing.assert_allclose(a[1], one, atol=1e-4)


def test_out_of_memory_backs_off_to_smaller_tiles(monkeypatch):
    model = _random_model(2)
    img = np.random.default_rng(3).normal(10, 3, (64, 64)).astype(np.float32)
    reference = _predict(model, img, tile=64)
    real = pipeline_mod._forward

    def fake(model_, x, pcfg, dtype):
        if x.shape[-1] > 2 * model.margin + 32:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(model_, x, pcfg, dtype)

    monkeypatch.setattr(pipeline_mod, "_forward", fake)
    events = []
    out = predict_mod.predict(model, img, PredictConfig(tile=64, precision="fp32"))
    result = drain(out, events.append)
    assert events[-1].info["splits"] >= 1
    np.testing.assert_allclose(result, reference, atol=1e-4)


def _one_window_per_pass_off_the_cpu(monkeypatch) -> str:
    """The device "auto" picks; off the CPU one window per forward pass.

    A GPU runs a few passes ahead of the writer (prefetch, write-behind), so with 2 passes of 32 windows
    the first tile is reported when both are done; with one window per pass a stop still ends it early.
    The CPU (no threads for an in-memory image) keeps its batches: a stop ends after the current one.
    """
    device = pick_device("auto").type
    if device != "cpu":
        monkeypatch.setitem(predict_mod.MAX_BATCH, device, 1)
    return device


def test_writes_into_caller_array_and_stop_ends_early(monkeypatch):
    """Stop ends after the forward passes in hand: what was predicted is written, the rest is left alone."""
    import threading

    device = _one_window_per_pass_off_the_cpu(monkeypatch)
    model = _random_model(2)
    img = np.random.default_rng(4).normal(10, 3, (128, 128)).astype(np.float32)
    out = np.full(img.shape, -1.0, dtype=np.float32)
    stop = threading.Event()
    gen = predict_mod.predict(model, img, PredictConfig(tile=16, precision="fp32"), out=out, stop=stop)
    assert next(gen).done == 0  # prediction has started
    first = next(gen)
    stop.set()
    events = [first]
    result = drain(gen, events.append)
    assert result is out and first.total == 64
    assert (out == -1).any() and (out != -1).any()
    written = sum(int((out[y : y + 16, x : x + 16] != -1).all()) for y in range(0, 128, 16) for x in range(0, 128, 16))
    assert written == len(events) < 64  # every reported tile is complete, no other tile was touched
    assert first.info["batch"] <= predict_mod.MAX_BATCH[device]


def test_a_stopped_prediction_into_its_own_array_is_zero_where_nothing_was_predicted(monkeypatch):
    """The output a prediction allocates is not initialised up front: a stop must zero what it did not write."""
    import threading

    _one_window_per_pass_off_the_cpu(monkeypatch)
    model = _random_model(2)
    img = np.random.default_rng(5).normal(10, 3, (128, 128)).astype(np.float32)
    for _ in range(3):  # reuse freed memory, so that an uninitialised array would hold old values
        drain(predict_mod.predict(model, img + 50, PredictConfig(tile=16, precision="fp32")))
    stop = threading.Event()
    gen = predict_mod.predict(model, img, PredictConfig(tile=16, precision="fp32"), stop=stop)
    next(gen)  # prediction has started (done=0)
    events = [next(gen)]
    stop.set()
    out = drain(gen, events.append)
    blocks = [out[y : y + 16, x : x + 16] for y in range(0, 128, 16) for x in range(0, 128, 16)]
    assert sum(int((b != 0).all()) for b in blocks) == len(events) < 64
    assert sum(int((b == 0).all()) for b in blocks) == 64 - len(events)


def test_reflect_index_never_leaves_the_image():
    idx = predict_mod.reflect_index(np.arange(-50, 60), 7)
    assert idx.min() == 0 and idx.max() == 6
    assert list(predict_mod.reflect_index(np.array([-2, -1, 0, 6, 7, 8]), 7)) == [2, 1, 0, 6, 5, 4]
