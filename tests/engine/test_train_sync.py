"""The training step waits for the device only every few steps; on the CPU it reads every step (as before)."""

import math

import torch

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine import _step as step_mod
from napari_selfsup_denoise.engine import train as train_mod
from napari_selfsup_denoise.engine._training import RunState
from napari_selfsup_denoise.engine.device import pick_device


def _run(noisy, **kw):
    cfg = TrainConfig(algorithm="n2v", max_steps=6, seed=0, patch_size=32, batch_size=4, depth=2, base_channels=8,
                      axes="YX", **kw)  # fmt: skip
    events, gen = [], train_mod.train(noisy, cfg)
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value.net.state_dict()


def test_reading_the_loss_every_few_steps_trains_the_same_weights(monkeypatch, camera_128):
    _, noisy = camera_128
    device = pick_device("auto").type  # where the runs train: read every step, then every fourth
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)  # (a GPU's convolutions, run twice)
    if device != "cpu":  # (the CPU reads every step by default)
        monkeypatch.setitem(train_mod.SYNC_EVERY, device, 1)
    every_step, w1 = _run(noisy)
    monkeypatch.setitem(train_mod.SYNC_EVERY, device, 4)
    every_fourth, w4 = _run(noisy)
    for k, v in w1.items():  # fewer than 20 steps: the clipping limit does not depend on the history yet
        assert torch.equal(v, w4[k]), k
    assert all(math.isfinite(e.loss) for e in every_step)  # reading every step: every step has its own loss
    assert every_fourth[3].loss == every_step[3].loss and every_fourth[5].loss == every_step[5].loss  # read at 4, 6
    assert every_fourth[4].loss == every_step[3].loss  # step 5 carries the last loss read
    assert all(math.isnan(e.loss) for e in every_fourth[:3])  # nothing read yet


class _Loss:
    """A method stand-in whose loss is ``values[i]`` times the parameters' sum at call ``i``."""

    def __init__(self, values):
        self.values = list(values)

    def loss(self, net, x, t, gen):
        return self.values.pop(0) * net.weight.sum()

    def after_step(self, net):
        pass


def test_a_non_finite_loss_skips_the_update_on_the_device_and_is_counted_when_read():
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1, fused=True)
    method, st = _Loss([1.0, math.nan, 1.0]), RunState()
    batch = (torch.zeros(2, 1), None)
    step_mod.optimiser_step(method, net, opt, batch, None, torch.float32, st)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    state = {k: v.clone() for k, v in opt.state[net.weight].items()}
    step_mod.optimiser_step(method, net, opt, batch, None, torch.float32, st)  # NaN: nothing may move, not even Adam's
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(torch.equal(v, state[k]) for k, v in opt.state[net.weight].items())
    step_mod.read_pending(st)
    assert st.bad == 1 and math.isnan(st.loss)
    step_mod.optimiser_step(method, net, opt, batch, None, torch.float32, st)
    step_mod.read_pending(st)
    assert st.bad == 0 and not torch.equal(net.weight, before["weight"])


def test_the_noise_model_is_read_only_where_the_loss_is_read(monkeypatch, camera_128):
    """Reading the noise model waits for the device: after the first step, only where the loss is read anyway."""
    from napari_selfsup_denoise.engine.noise import NoiseModel

    log, real_step, real_read, real_report = [], train_mod.optimiser_step, train_mod.read_pending, NoiseModel.report
    monkeypatch.setitem(train_mod.SYNC_EVERY, "cpu", 4)
    monkeypatch.setattr(train_mod, "optimiser_step", lambda *a, **k: log.append("step") or real_step(*a, **k))
    monkeypatch.setattr(train_mod, "read_pending", lambda st: log.append("read") or real_read(st))
    monkeypatch.setattr(NoiseModel, "report", lambda self: log.append("noise") or real_report(self))
    cfg = TrainConfig(algorithm="blindspot", max_steps=23, seed=0, patch_size=32, batch_size=2, depth=1,
                      base_channels=4, axes="YX", start_from="random", device="cpu", val_fraction=0.0)  # fmt: skip
    events, gen = [], train_mod.train(camera_128[1], cfg)
    events = [next(gen) for _ in range(23)]
    gen.close()
    during = log[: [i for i, e in enumerate(log) if e == "step"][-1] + 3]  # up to the 23rd step's reads
    noise = [i for i, e in enumerate(during) if e == "noise"]
    assert noise[0] == 1 and during[:2] == ["step", "noise"]  # the first step: the event shows the starting model
    assert [during[i - 1] for i in noise[1:]] == ["read", "read"]  # at steps 12 and 20: the first reads past 10, 20
    assert [during[:i].count("step") for i in noise[1:]] == [12, 20]
    assert events[11].noise is not None and events[11].noise is events[18].noise is not events[19].noise  # (new reads)
