"""A tiny seeded model and the tiled prediction call shared by the pipeline tests (tests/engine is on the path)."""

import torch

from napari_selfsup_denoise import PredictConfig, TrainConfig
from napari_selfsup_denoise.config import resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model


def tiny_model(algorithm: str = "n2v", channels: int = 1, ndim: int = 2) -> Model:
    axes = "ZYX" if ndim == 3 else "YX"
    cfg = resolve_defaults(TrainConfig(algorithm=algorithm, depth=2 if ndim == 2 else 1, base_channels=8, axes=axes))
    torch.manual_seed(0)
    net = get_method(cfg).build(ndim, channels).eval()
    norm = Normalisation("meanstd", (10.0,) * channels, (3.0,) * channels)
    return Model(net, cfg, axes, ndim, channels, norm)


def run(model, img, tile, device="auto", **kw):
    return drain(predict_mod.predict(model, img, PredictConfig(tile=tile, precision="fp32", device=device), **kw))
