"""Prediction says that it has started before its first forward pass (issue 10 item 10: "denoising started")."""

import numpy as np
import torch

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model


def _model() -> Model:
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", depth=2, base_channels=8, axes="YX"))
    torch.manual_seed(0)
    net = get_method(cfg).build(2, 1).eval()
    return Model(net, cfg, "YX", 2, 1, Normalisation("meanstd", (10.0,), (3.0,)))


def test_the_first_prediction_event_comes_before_any_forward_pass_and_counts_the_tiles():
    model = _model()
    passes: list[int] = []
    model.net.register_forward_pre_hook(lambda _m, _args: passes.append(1))
    img = np.random.default_rng(0).normal(10, 3, (128, 96)).astype(np.float32)
    gen = predict_mod.predict(model, img, PredictConfig(tile=32, precision="fp32"))
    first = next(gen)
    assert passes == []  # old code: the first event came after the first tile's forward pass
    assert (first.done, first.total, first.pixels_done, first.pixels_total) == (0, 12, 0, 128 * 96)
    assert first.eta == 0.0 and "key" not in first.info and first.info["tile"] == 32
    rest = []
    while True:
        try:
            rest.append(next(gen))
        except StopIteration:
            break
    assert [ev.done for ev in rest] == list(range(1, 13))  # then one event per tile, as before
    assert passes and rest[-1].pixels_done == 128 * 96
