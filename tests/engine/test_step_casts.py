"""A low-precision training step casts the network's weights in one operation each way, with autocast's numbers.

On the CPU, and on CUDA when present (``SELFSUP_TEST_DEVICES=cuda``: CUDA only, as tests/engine/test_on_device.py).
"""

import math
import os

import pytest
import torch
from op_names import OpNames  # tests/engine is on the path (rootdir-less import mode)

from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine import _step as step_mod
from napari_selfsup_denoise.engine._training import RunState
from napari_selfsup_denoise.engine.methods import get_method

DEVICES = (
    os.environ.get("SELFSUP_TEST_DEVICES", "").strip().split(",")
    if os.environ.get("SELFSUP_TEST_DEVICES")
    else (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
)


def _setup(algorithm, device="cpu"):
    cfg = resolve_defaults(TrainConfig(algorithm=algorithm, depth=2, base_channels=8, axes="YX", seed=0), ndim=2)
    method = get_method(cfg)
    torch.manual_seed(0)
    net = method.build(2, 1).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(2, 1, 48, 48, generator=torch.Generator().manual_seed(1)).contiguous(
        memory_format=torch.channels_last
    )
    return method, net, x.to(device)


def _grads(algorithm, monkeypatch, low, device):
    method, net, x = _setup(algorithm, device)
    if not low:
        monkeypatch.setattr(step_mod.LowWeights, "of", classmethod(lambda cls, net, dtype: None))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # (a GPU's convolutions, run twice)
    ops = OpNames()
    with ops:
        loss = step_mod._losses(method, net, x, None, torch.Generator(device).manual_seed(2), torch.bfloat16, 2)
    monkeypatch.undo()
    return float(loss), {n: p.grad for n, p in net.named_parameters()}, ops.names


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("algorithm", ["blindspot", "n2v"])
def test_the_weights_are_cast_once_each_way_with_autocasts_gradients(algorithm, device, monkeypatch):
    loss, grads, ops = _grads(algorithm, monkeypatch, True, device)
    ref_loss, ref_grads, ref_ops = _grads(algorithm, monkeypatch, False, device)
    assert math.isfinite(loss) and loss == ref_loss
    assert grads.keys() == ref_grads.keys()
    for name, g in grads.items():
        assert (g is None) == (ref_grads[name] is None), name
        assert g is None or (g.dtype == torch.float32 and torch.equal(g, ref_grads[name])), name
    assert ops.count("_foreach_copy_") == 2 and ref_ops.count("_foreach_copy_") == 0
    assert ops.count("_to_copy") + 10 < ref_ops.count("_to_copy")  # autocast: one cast per weight and direction


def test_a_stopped_forward_pass_leaves_the_networks_own_weights_in_place():
    method, net, x = _setup("blindspot")
    before = dict(net.named_parameters())

    def stop(*_):
        raise RuntimeError("stopped")

    handle = net.register_forward_hook(stop)  # raised inside the step, as a Stop is (engine/_abort.py)
    with pytest.raises(RuntimeError, match="stopped"):
        step_mod.optimiser_step(method, net, torch.optim.Adam(net.parameters()), (x, None), None, torch.bfloat16,
                                RunState())  # fmt: skip
    handle.remove()
    assert all(p is before[n] for n, p in net.named_parameters())
    step_mod.LowWeights.release(net)
    assert "_low_weights" not in net.__dict__
