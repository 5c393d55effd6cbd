"""The prediction pipeline's host passes on the CPU: numpy maths, no torch arithmetic (no OpenMP team)."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.windows import Normaliser, window_index

ARITHMETIC = {"add", "add_", "mul", "mul_", "sub", "div", "copy_", "flip", "sum", "isfinite", "clamp"}  # not no-ops


class _Identity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.margin, self.multiple = 4, 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Record(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def _identity_model() -> Model:
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", depth=1, base_channels=4, axes="YX"))
    return Model(_Identity(), cfg, "YX", 2, 1, Normalisation("meanstd", (100.0,), (20.0,)))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_cpu_prediction_runs_its_host_passes_without_torch_arithmetic(dtype):
    """A torch operation on the CPU starts an OpenMP team whose idle threads spin afterwards and take the
    core the reader's and writer's codecs need; with an identity network no torch arithmetic may run."""
    img = np.random.default_rng(0).poisson(100, (45, 38)).astype(dtype)
    model = _identity_model()
    with _Record() as rec:
        out = drain(predict_mod.predict(model, img, PredictConfig(tile=16, precision="fp32", device="cpu")))
    assert not ARITHMETIC & set(rec.names), sorted(ARITHMETIC & set(rec.names))
    np.testing.assert_allclose(out, img.astype(np.float32), atol=1e-4)


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "int32", "float32", "float64"])
def test_host_window_is_the_mirrored_normalised_block(dtype):
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 250, (2, 1, 9)).astype(dtype)  # a one-pixel axis fills its run
    norm = Normaliser(Normalisation("meanstd", (100.0, 7.0), (20.0, 3.0)))
    idx = window_index(((0, 1), (0, 9)), (1, 9), 3, 4)
    dst = torch.empty((2, len(idx[0]), len(idx[1])))
    norm.window_into(dst, torch.from_numpy(raw), idx, (0, 0))
    mirrored = raw[:, np.ix_(idx[0], idx[1])[0], np.ix_(idx[0], idx[1])[1]].astype(np.float64)
    expected = (mirrored - np.array([100.0, 7.0])[:, None, None]) / np.array([20.0, 3.0])[:, None, None]
    np.testing.assert_allclose(dst.numpy(), expected, rtol=1e-6, atol=1e-6)
    back = norm.denormalise_into("denoised", dst, torch.empty(dst.shape))
    np.testing.assert_allclose(back.numpy(), mirrored, rtol=1e-6, atol=1e-4)
    spread = norm.denormalise_into("uncertainty", dst, torch.empty(dst.shape))
    np.testing.assert_allclose(spread.numpy(), expected * np.array([20.0, 3.0])[:, None, None], rtol=1e-6)
