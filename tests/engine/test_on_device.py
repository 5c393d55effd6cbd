"""The device paths (training data, masks, sync-free steps, the prediction pipeline) on every device present.

Each test runs on the CPU, and on CUDA when a GPU is present; ``SELFSUP_TEST_DEVICES=cuda``
runs them on CUDA only and fails (rather than skips) where CUDA is missing, which the
prepared GPU check (``benchmarks/gpu_check.sh``, docs/gpu.md) relies on. Results are
compared with the CPU's at fp32 (TF32 off), so a GPU must reproduce the CPU's numbers.
"""

from __future__ import annotations

import math
import os
import threading

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import _step as step_mod
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine import train as train_mod
from napari_selfsup_denoise.engine._training import RunState
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import Normalisation, PatchSampler
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.masking import n2v_manipulate
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.noise import NoiseModel


def _devices() -> list[str]:
    asked = os.environ.get("SELFSUP_TEST_DEVICES", "").strip()
    if asked:
        return asked.split(",")
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


DEVICES = _devices()
pytestmark = pytest.mark.parametrize("device", DEVICES)


def _model(algorithm: str = "blindspot", ndim: int = 2, channels: int = 1) -> Model:
    axes = "ZYX" if ndim == 3 else "YX"
    depth = 1 if ndim == 3 or algorithm == "n2v" else 2
    cfg = resolve_defaults(TrainConfig(algorithm=algorithm, depth=depth, base_channels=8, axes=axes))
    torch.manual_seed(0)
    net = get_method(cfg).build(ndim, channels).eval()
    return Model(net, cfg, axes, ndim, channels, Normalisation("meanstd", (10.0,) * channels, (3.0,) * channels))


def _predict(model: Model, img, device: str, tile: int = 32, axes: str | None = None, precision: str = "fp32", **kw):
    pcfg = PredictConfig(tile=tile, device=device, precision=precision, **kw)
    return drain(predict_mod.predict(model, img, pcfg, axes=axes))


def test_patches_are_cut_on_the_device_as_on_the_host(device):
    img = np.random.default_rng(0).normal(10, 3, (3, 2, 40, 36)).astype(np.float32)  # T C Y X
    canon, norm = canonical(img, "TCYX"), Normalisation("meanstd", (10.0, 10.0), (3.0, 3.0))
    host, dev = (PatchSampler(canon, norm, (1, 16, 16), np.random.default_rng(5), 0.1, True, device=d)
                 for d in (None, torch.device(device)))  # fmt: skip
    assert dev.on_device is not None
    for _ in range(3):
        (xh, _), (xd, _) = host.batch(8), dev.batch(8)
        assert xd.device.type == device
        assert torch.equal(xh, xd.cpu())
    assert torch.equal(host.val_batch()[0], dev.val_batch()[0].cpu())


def test_n2v_masks_drawn_on_the_device_replace_pixels_by_neighbours(device):
    x = torch.randn(4, 1, 32, 32, device=device)
    gen = torch.Generator(torch.device(device)).manual_seed(0)
    out, mask = n2v_manipulate(x, 0.05, radius=2, gen=gen)
    assert out.device.type == mask.device.type == device
    out, mask, x = out.cpu(), mask.cpu(), x.cpu()
    assert torch.equal(out[mask == 0], x.expand_as(out)[mask == 0])
    for b, _, y, xx in torch.nonzero(mask)[:20].tolist():
        hood = x[b, 0, max(0, y - 2) : y + 3, max(0, xx - 2) : xx + 3]
        assert bool((hood == out[b, 0, y, xx]).any())
    assert 0.02 < float(mask.mean()) < 0.08


def _events(noisy, **kw) -> tuple[list, Model]:
    events, gen = [], train_mod.train(noisy, TrainConfig(**kw))
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


BLINDSPOT = dict(algorithm="blindspot", axes="YX", seed=0, batch_size=4, depth=2, base_channels=8, patch_size=96,
                 precision="fp32", start_from="random", val_fraction=0.0, max_seconds=None)  # fmt: skip


def test_the_first_loss_on_the_device_is_the_cpus(device, camera_128):
    """Same weights, same patches (drawn on the host, cut on the device): the same loss at fp32."""
    noisy = np.tile(camera_128[1], (2, 2))
    on_device, _ = _events(noisy, max_steps=1, device=device, **BLINDSPOT)
    on_cpu, _ = _events(noisy, max_steps=1, device="cpu", **BLINDSPOT)
    assert math.isclose(on_device[0].loss, on_cpu[0].loss, rel_tol=1e-4)


def test_training_on_the_device_reads_the_loss_every_few_steps(device, camera_128):
    every = train_mod.SYNC_EVERY.get(device, 1)
    events, model = _events(camera_128[1], max_steps=every + 2, device=device, **{**BLINDSPOT, "base_channels": 4})
    losses = [e.loss for e in events]  # NaN until the first read, then the last loss read
    assert all(math.isnan(v) for v in losses[: every - 1]) and all(math.isfinite(v) for v in losses[every - 1 :])
    assert next(model.net.parameters()).device.type == device
    assert model.summary["steps"] == every + 2 and model.summary["device"].startswith(device)


def test_a_non_finite_loss_skips_the_update_on_the_device(device):
    net = torch.nn.Linear(3, 1).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)

    class Loss:
        def __init__(self):
            self.values = [1.0, math.nan, 1.0]

        def loss(self, net, x, t, gen):
            return self.values.pop(0) * net.weight.sum()

        def after_step(self, net):
            pass

    st, batch, method = RunState(), (torch.zeros(2, 1, device=device), None), Loss()
    step_mod.optimiser_step(method, net, opt, batch, None, torch.float32, st)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    step_mod.optimiser_step(method, net, opt, batch, None, torch.float32, st)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    step_mod.read_pending(st)
    assert st.bad == 1
    step_mod.optimiser_step(method, net, opt, batch, None, torch.float32, st)
    step_mod.read_pending(st)
    assert st.bad == 0 and not torch.equal(net.weight, before["weight"])


@pytest.mark.parametrize(("algorithm", "ndim", "shape"), [("n2v", 2, (70, 90)), ("blindspot", 2, (70, 90)),
                                                          ("blindspot", 3, (10, 24, 20))])  # fmt: skip
def test_prediction_on_the_device_equals_the_cpus(device, algorithm, ndim, shape):
    model = _model(algorithm, ndim)
    img = np.random.default_rng(1).normal(10, 3, shape).astype(np.float32)
    whole_cpu = _predict(model, img, "cpu", tile=256)
    tiled = _predict(model, img, device, tile=16 if ndim == 3 else 32)  # several windows per forward pass
    np.testing.assert_allclose(tiled, whole_cpu, atol=1e-4, rtol=0)


def test_uint16_input_and_tta_on_the_device(device):
    model = _model("n2v")
    img = np.random.default_rng(2).integers(0, 30, (2, 40, 52)).astype(np.uint16)
    want = _predict(model, img.astype(np.float32), "cpu", tile=64, axes="TYX", tta=True)
    np.testing.assert_allclose(_predict(model, img, device, axes="TYX", tta=True), want, atol=1e-4, rtol=0)


def test_zarr_in_zarr_out_through_the_threads_on_the_device(device, tmp_path):
    zarr = pytest.importorskip("zarr")
    model = _model("n2v")
    img = np.random.default_rng(3).integers(0, 30, (3, 70, 90)).astype(np.uint16)
    src = zarr.create_array(str(tmp_path / "in.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype=img.dtype)
    src[:] = img
    out = zarr.create_array(str(tmp_path / "out.zarr"), shape=img.shape, chunks=(1, 32, 32), dtype="float32")
    pcfg = PredictConfig(tile=32, device=device, precision="fp32")
    drain(predict_mod.predict(model, src, pcfg, axes="TYX", out=out))
    want = _predict(model, img.astype(np.float32), "cpu", tile=256, axes="TYX")
    np.testing.assert_allclose(out[:], want, atol=1e-4, rtol=0)


def test_stop_and_out_of_memory_back_off_on_the_device(device, monkeypatch):
    model = _model("n2v")
    img = np.random.default_rng(4).normal(10, 3, (96, 96)).astype(np.float32)
    want = _predict(model, img, "cpu", tile=256)
    monkeypatch.setitem(predict_mod.MAX_BATCH, device, 1)
    stop = threading.Event()
    gen = predict_mod.predict(model, img, PredictConfig(tile=16, device=device, precision="fp32"), stop=stop)
    next(gen)  # prediction has started (done=0)
    events = [next(gen)]
    stop.set()
    out = drain(gen, events.append)
    blocks = [
        (out[y : y + 16, x : x + 16], want[y : y + 16, x : x + 16]) for y in range(0, 96, 16) for x in range(0, 96, 16)
    ]
    done = [b for b, w in blocks if np.allclose(b, w, atol=1e-4)]
    assert len(done) == len(events) < 36 and sum(int((b == 0).all()) for b, _ in blocks) == 36 - len(events)
    real = predict_mod.Pipeline._forward_batch

    def tight(self, items):
        (y0, y1), _ = items[0][2]  # the first window's core box
        if y1 - y0 > 24:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(self, items)

    monkeypatch.setattr(predict_mod.Pipeline, "_forward_batch", tight)
    events = []
    np.testing.assert_allclose(drain(predict_mod.predict(model, img, PredictConfig(
        tile=48, device=device, precision="fp32")), events.append), want, atol=1e-4, rtol=0)  # fmt: skip
    assert events[-1].info["splits"] >= 1


def test_bf16_on_the_device_is_close_to_fp32(device):
    model = _model("blindspot")
    img = np.random.default_rng(5).normal(10, 3, (64, 64)).astype(np.float32)
    fp32 = _predict(model, img, device, tile=64)
    bf16 = _predict(model, img, device, tile=64, precision="bf16")
    assert float(np.abs(bf16 - fp32).max()) < 0.1 * float(img.std())


def test_the_noise_kind_follows_its_buffer_when_read_once(device):
    """The kind is read from its buffer once per change (a GPU read waits): setting, loading and moving it count."""
    a, b = NoiseModel(1, "gaussian"), NoiseModel(1, "poisson-gaussian")
    assert a.kind == "gaussian" and a.kind == "gaussian"
    a.set_kind("known")
    assert a.kind == "known" and not a.learned
    a.load_state_dict(b.state_dict())
    assert a.kind == "poisson-gaussian"
    assert a.to(device).kind == "poisson-gaussian"
    with torch.inference_mode():
        c = NoiseModel(1, "known")
    assert c.kind == "known"


@pytest.mark.parametrize("algorithm", ["n2v", "n2v2", "structn2v", "blindspot"])
def test_training_steps_between_reads_do_not_wait_for_a_gpu(device, algorithm, camera_128):
    """On CUDA a step only queues work: nothing in it may wait for the device (torch's sync debug mode)."""
    if device != "cuda":
        pytest.skip("only a GPU runs ahead of the host")
    cfg = TrainConfig(**{**BLINDSPOT, "algorithm": algorithm, "max_steps": 9, "device": device})
    gen = train_mod.train(np.tile(camera_128[1], (2, 2)), cfg)
    next(gen), next(gen)  # set-up and the first noise report wait; steps 3 to 8 must not
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(6):
            next(gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    gen.close()


def test_n2v2_upsamples_in_float32_under_autocast(device):
    """Linear upsampling's backward adds each gradient up from 16 outputs (atomics in bf16 on CUDA): float32 there.

    On the H200, bf16 training lost N2V2 ~2 dB at equal steps through it; CPU autocast already ran it in float32.
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class Dtypes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__.startswith("upsample_bilinear2d"):
                self.seen.append((func.overloadpacket.__name__, args[0].dtype))
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    net = get_method(resolve_defaults(TrainConfig(algorithm="n2v2", depth=2, base_channels=8, axes="YX")))
    net = net.build(2, 1).to(device)
    x = torch.randn(2, 1, 32, 32, device=device)
    with Dtypes() as trace:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            out = net(x)
        out.float().sum().backward()
    assert {n for n, _ in trace.seen} == {"upsample_bilinear2d", "upsample_bilinear2d_backward"}
    assert all(d == torch.float32 for _, d in trace.seen), trace.seen
