"""Training data held on the training device: the same batches as the host path, cut there."""

import numpy as np
import pytest
import torch

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.engine import patches
from napari_selfsup_denoise.engine.arrays import canonical
from napari_selfsup_denoise.engine.data import Normalisation, PatchSampler, dihedral
from napari_selfsup_denoise.engine.train import train

CPU = torch.device("cpu")


def _samplers(img, axes, patch, target=None, val_fraction=0.1):
    canon = canonical(img, axes)
    tcanon = None if target is None else canonical(target, axes)
    norm = Normalisation("meanstd", (10.0,) * canon.shape[2], (3.0,) * canon.shape[2])
    make = lambda device: PatchSampler(  # noqa: E731
        canon, norm, patch, np.random.default_rng(5), val_fraction, True, tcanon, device=device
    )
    return make(None), make(CPU)


@pytest.mark.parametrize(
    ("shape", "axes", "patch"),
    [((40, 44), "YX", (1, 16, 16)), ((3, 2, 30, 36), "TCYX", (1, 8, 8)), ((6, 12, 20, 24), "TZYX", (4, 8, 8))],
)
def test_device_batches_equal_the_host_batches(shape, axes, patch):
    img = np.random.default_rng(0).normal(10, 3, shape).astype(np.float32)
    host, dev = _samplers(img, axes, patch)
    assert host.on_device is None and dev.on_device is not None
    for _ in range(4):  # every draw of the host path's generator, augmentations included
        (xh, _), (xd, _) = host.batch(8), dev.batch(8)
        assert xd.shape == xh.shape and xd.device == CPU
        assert torch.equal(xh, xd)
    assert torch.equal(host.val_batch()[0], dev.val_batch()[0])


def test_device_batches_cut_the_target_at_the_same_place():
    rng = np.random.default_rng(1)
    img, target = (rng.integers(0, 50, (2, 32, 32)).astype(np.uint16) for _ in range(2))
    host, dev = _samplers(img, "TYX", (1, 16, 16), target=target)
    (xh, th), (xd, td) = host.batch(6), dev.batch(6)
    assert torch.equal(xh, xd) and th is not None and td is not None and torch.equal(th, td)


def test_dihedral_offsets_are_the_dihedral_transforms():
    grid = np.arange(25.0).reshape(5, 5)
    tables = patches.dihedral_offsets(5, 5).numpy()
    for k in range(4):
        for flip in (False, True):
            np.testing.assert_array_equal(grid.ravel()[tables[2 * k + flip]], dihedral(grid, k, flip))


def test_data_too_large_for_the_device_stays_on_the_host(monkeypatch):
    monkeypatch.setattr(patches, "HOST_MAX_BYTES", 100)
    img = np.random.default_rng(0).normal(10, 3, (40, 44)).astype(np.float32)
    _, dev = _samplers(img, "YX", (1, 16, 16))
    assert dev.on_device is None
    assert dev.batch(2)[0].shape == (2, 1, 1, 16, 16)


@pytest.mark.parametrize("algorithm", ["n2v", "blindspot"])
def test_training_from_device_data_is_the_host_training(monkeypatch, camera_128, algorithm):
    _, noisy = camera_128
    cfg = TrainConfig(algorithm=algorithm, max_steps=3, seed=0, patch_size=64, batch_size=4, depth=2,
                      base_channels=8, axes="YX", start_from="random")  # fmt: skip

    def weights() -> dict[str, torch.Tensor]:
        gen = train(noisy, cfg)
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value.net.state_dict()

    on_device = weights()
    monkeypatch.setattr(patches, "HOST_MAX_BYTES", 0)
    on_host = weights()
    for k, v in on_device.items():
        assert torch.equal(v, on_host[k]), k


@pytest.mark.parametrize(("shape", "patch"), [((2, 1, 2, 1, 30, 36), (1, 12, 12)), ((1, 3, 1, 10, 20, 24), (4, 8, 8))])
def test_the_gpu_gather_cuts_what_the_cpu_copy_cuts(shape, patch):
    """The index gather (one kernel on a GPU) and the CPU's strided copy give the same patches."""
    canon = np.random.default_rng(2).normal(10, 3, shape).astype(np.float32)
    norm = Normalisation("meanstd", (10.0,) * shape[2], (3.0,) * shape[2])
    rng = np.random.default_rng(3)
    picks = [
        (int(rng.integers(shape[0] * shape[1])), tuple(int(rng.integers(s - p + 1)) for s, p in zip(shape[3:], patch)),
         int(rng.integers(4)), bool(rng.integers(2)))
        for _ in range(9)
    ]  # fmt: skip
    gathered = patches.DevicePatches([canon], norm, patch, CPU, gather=True).cut(picks)[0]
    copied = patches.DevicePatches([canon], norm, patch, CPU, gather=False).cut(picks)[0]
    assert gathered.shape == (9, shape[2], *patch)
    assert torch.equal(gathered, copied)
