"""The blind-spot network's fast code computes the paper's maths: same outputs and gradients as the plain reference."""

from __future__ import annotations

import blindspot_reference as reference  # tests/engine is on the path (pytest's rootdir-less import mode)
import pytest
import torch

from napari_selfsup_denoise.engine.nets.blindspot import BlindSpotNet

CASES = [
    (2, 2, 6, (64, 48)),  # non-square: the directions run as two batches of different shapes
    (2, 3, 4, (64, 64)),
    (2, 1, 5, (8, 16)),
    (3, 1, 4, (16, 24, 8)),
    (3, 2, 4, (16, 16, 16)),
]


def _net(ndim: int, depth: int, base: int) -> BlindSpotNet:
    torch.manual_seed(0)
    return BlindSpotNet(ndim, channels=2, depth=depth, base=base)


@pytest.mark.parametrize(("ndim", "depth", "base", "shape"), CASES)
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_output_equals_the_plain_reference(ndim, depth, base, shape, mode):
    net = _net(ndim, depth, base).train(mode == "train")
    x = torch.randn(3, 2, *shape)
    want = reference.forward(net, x)
    with torch.set_grad_enabled(mode == "train"):  # training records gradients; prediction does not
        got = net(x)
    assert got.shape == want.shape
    assert float((got - want).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


@pytest.mark.parametrize(("ndim", "depth", "base", "shape"), [CASES[0], CASES[1], CASES[3]])  # CASES[1]: odd skip rows
def test_gradients_equal_the_plain_reference(ndim, depth, base, shape):
    net = _net(ndim, depth, base).double()
    x = torch.randn(2, 2, *shape, dtype=torch.float64)
    grads = []
    for forward in (net, lambda t: reference.forward(net, t)):
        net.zero_grad()
        xg = x.clone().requires_grad_(True)
        forward(xg).square().sum().backward()
        grads.append([xg.grad.clone()] + [p.grad.clone() for p in net.parameters()])
    for got, want in zip(*grads):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)


def test_a_training_pass_cuts_one_full_resolution_map():
    """A cut's backward fills a zero copy of the whole map: with gradients only the last shift cuts at full size."""
    from torch.utils._python_dispatch import TorchDispatchMode

    net = _net(2, 2, 6).train()
    x = torch.randn(2, 2, 32, 40)
    cuts: list[tuple[int, ...]] = []

    class Cuts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket is torch.ops.aten.slice_backward:
                cuts.append(tuple(args[1]))  # the shape of the map that was cut
            return func(*args, **(kwargs or {}))

    out = net(x)
    with Cuts():
        out.square().sum().backward()
    # one per batch of directions (2 of each shape: 32 x 40 turned and not), each with 4 tail rows
    assert sorted(c for c in cuts if c[2] >= 32) == [(4, 6, 36, 40), (4, 6, 44, 32)]


def test_branch_output_is_the_reference_branch():
    net = _net(2, 2, 6)
    x = torch.randn(2, 2, 32, 40)
    with torch.no_grad():
        got = net.branch(x)
    assert torch.allclose(got, reference.branch(net, x), atol=1e-5)


def test_state_dict_keys_and_shapes_are_frozen():
    # Pre-trained weights are shipped for these exact names and shapes (2D depth 2 / 24 ch, 3D depth 1 / 16 ch).
    for ndim, depth, base in ((2, 2, 24), (3, 1, 16)):
        state = BlindSpotNet(ndim, 1, depth, base).state_dict()
        spatial = (3,) * ndim
        want = {}
        cins = [1] + [base] * depth
        for i in range(depth + 1):
            want[f"branch.enc.{i}.conv1.weight"] = (base, cins[i], *spatial)
            want[f"branch.enc.{i}.conv2.weight"] = (base, base, *spatial)
        for i in range(depth):
            want[f"branch.dec.{i}.conv1.weight"] = (base, 2 * base, *spatial)
            want[f"branch.dec.{i}.conv2.weight"] = (base, base, *spatial)
        fused = (4 if ndim == 2 else 6) * base
        ones = (1,) * ndim
        want |= {"fuse.0.weight": (fused, fused, *ones), "fuse.1.weight": (2 * base, fused, *ones)}
        want["fuse.2.weight"] = (2, 2 * base, *ones)
        for name, shape in list(want.items()):
            want[name.replace("weight", "bias")] = (shape[0],)
        assert {name: tuple(t.shape) for name, t in state.items()} == want
