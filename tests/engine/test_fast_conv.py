"""3D prediction at batch 1 on the CPU never takes PyTorch's slow reference convolution, and gives the same output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.engine import _fast_conv
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.predict import predict
from napari_selfsup_denoise.engine.train import train

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch has no oneDNN")
SLOW = "aten::slow_conv3d_forward"


def _slow_kernels(func):
    """``func()`` and the kernel shapes of the convolutions it ran on PyTorch's slow reference path."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        out = func()
    slow = prof.key_averages(group_by_input_shape=True)
    return out, {tuple(e.input_shapes[1][2:]) for e in slow if e.key == SLOW}


@pytest.mark.parametrize(
    ("shape", "kernel", "padding"),
    [((1, 16, 10, 20, 24), 3, (3, 1, 1)), ((1, 4, 6, 9, 7), 3, 1), ((1, 1, 8, 8, 8), 2, 0), ((1, 8, 5, 6, 7), 1, 0)],
)
def test_the_routed_convolution_is_pytorchs_convolution(shape, kernel, padding):
    torch.manual_seed(0)
    x, w, b = torch.randn(shape), torch.randn(5, shape[1], *(kernel,) * 3), torch.randn(5)
    with torch.inference_mode():
        want = F.conv3d(x, w, b, padding=padding)
        with _fast_conv.batch_one_conv3d(x.device, torch.float32, 3):
            got, slow = _slow_kernels(lambda: F.conv3d(x, w, b, padding=padding))
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-5 * max(1.0, float(want.abs().max()))
    assert slow <= {(1, 1, 1)}  # a pointwise convolution stays on PyTorch's path, where it is faster


def test_gradients_and_batches_are_left_to_pytorch():
    x, w = torch.randn(2, 4, 6, 6, 6), torch.randn(4, 4, 3, 3, 3)
    assert _fast_conv._onednn_conv3d(x, w) is None  # batch 2: PyTorch uses oneDNN itself
    assert _fast_conv._onednn_conv3d(x[:1].double(), w.double()) is None
    assert _fast_conv._onednn_conv3d(x[:1], w, padding="same") is None
    assert not _fast_conv.usable(torch.device("cpu"), torch.bfloat16, 3)
    assert not _fast_conv.usable(torch.device("cpu"), torch.float32, 2)


def test_3d_blindspot_prediction_skips_the_slow_path_with_the_same_output(make_stack, monkeypatch):
    data = make_stack((12, 40, 40))
    cfg = TrainConfig(
        algorithm="blindspot",
        axes="ZYX",
        max_steps=1,
        max_seconds=None,
        base_channels=4,
        seed=0,
        start_from="random",
        val_fraction=0.0,
        device="cpu",
    )
    model = drain(train(data, cfg))
    pcfg = PredictConfig(device="cpu", precision="fp32")
    got, slow = _slow_kernels(lambda: drain(predict(model, data, pcfg, axes="ZYX")))
    assert slow <= {(1, 1, 1)}, f"3x3x3 convolutions on the slow path: {slow}"
    monkeypatch.setattr(_fast_conv, "usable", lambda *_a: False)
    want = drain(predict(model, data, pcfg, axes="ZYX"))
    assert float(np.abs(np.asarray(got) - np.asarray(want)).max()) <= 1e-4 * max(1.0, float(np.abs(want).max()))
