"""A time-lapse of small frames shares forward passes with the default 2D blind-spot model (issue 10, item 12).

The issue's case: 200 frames of 133 x 162 took one forward pass per frame, each
paying the blind-spot network's wide margin. The other tests of frames sharing
passes use an N2V network; this one uses the default 2D blind-spot network (the
frozen architecture: depth 2, 24 channels), on 12 frames of the issue's size.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_selfsup_denoise import TrainConfig
from napari_selfsup_denoise.config import PredictConfig, resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_mod
from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.device import pick_device
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.methods import get_method
from napari_selfsup_denoise.engine.model import Model


def _default_blindspot_2d() -> Model:
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", axes="YX"))
    assert (cfg.depth, cfg.base_channels) == (2, 24)  # the shipped 2D prior's network
    torch.manual_seed(0)
    net = get_method(cfg).build(2, 1).eval()
    return Model(net, cfg, "YX", 2, 1, Normalisation("meanstd", (10.0,), (3.0,)))


def _predict(model: Model, img: np.ndarray) -> tuple[np.ndarray, int]:
    """Denoise ``img`` (TYX) through the engine's public prediction API; also the frames in the first pass."""
    events: list = []
    out = drain(predict_mod.predict(model, img, PredictConfig(precision="fp32"), axes="TYX"), events.append)
    return out, int(events[0].info["batch"])


def test_default_blindspot_denoises_small_frames_several_per_pass_as_one_at_a_time(monkeypatch):
    model = _default_blindspot_2d()
    img = np.random.default_rng(12).normal(10, 3, (12, 133, 162)).astype(np.float32)
    together, batch = _predict(model, img)
    assert batch > 1, "each frame of the time-lapse took its own forward pass"
    monkeypatch.setitem(predict_mod.MAX_BATCH, pick_device("auto").type, 1)  # one frame per pass, where "auto" runs
    alone, one = _predict(model, img)
    assert one == 1
    assert together.shape == img.shape and np.isfinite(together).all()
    np.testing.assert_allclose(together, alone, atol=1e-5)
