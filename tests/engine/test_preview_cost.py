"""A live preview costs at most a few training steps of compute, in 2D and 3D (issue 10, item 10)."""

from __future__ import annotations

import numpy as np

from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine import predict as predict_module
from napari_selfsup_denoise.engine.events import TrainProgress
from napari_selfsup_denoise.engine.preview_cost import PREVIEW_STEPS, preview_region, preview_steps
from napari_selfsup_denoise.engine.train import train as train_gen


def _core(image_shape: tuple[int, ...], region: tuple[slice, ...] | None) -> tuple[int, ...]:
    if region is None:
        return image_shape
    return tuple(len(range(*sl.indices(n))) for sl, n in zip(region, image_shape))


def test_a_3d_preview_costs_at_most_a_few_training_steps(monkeypatch):
    costs: list[float] = []
    real = predict_module.predict

    def counting(model, image, config=None, **kwargs):
        core = _core(np.shape(image), kwargs.get("region"))
        costs.append(preview_steps(core, model.margin, model.multiple, model.config))
        return real(model, image, config, **kwargs)

    monkeypatch.setattr(predict_module, "predict", counting)
    vol = np.random.default_rng(0).normal(100, 10, (24, 96, 96)).astype(np.float32)
    cfg = TrainConfig(
        algorithm="blindspot", axes="ZYX", max_steps=2, max_seconds=None, preview_every_s=1e-3,
        patch_size=32, patch_size_z=8, batch_size=2, base_channels=4, depth=1, seed=0,
        val_fraction=0.0,  # no validation split: the end-of-training self-check predicts one crop, not two
    )  # fmt: skip
    events = list(train_gen(vol, cfg, preview=vol))
    previews = [e.preview for e in events if isinstance(e, TrainProgress) and e.preview is not None]
    assert costs and max(costs) <= PREVIEW_STEPS, costs  # the whole volume would cost 24 steps
    assert previews and previews[0].shape == vol.shape
    changed = previews[0] != vol  # denoised in a central box, raw around it
    assert changed[12, 48, 48] and not changed[:, 0, 0].any() and not changed[:, 95, 95].any()


def test_2d_defaults_keep_the_whole_preview_crop():
    for algorithm in ("n2v", "blindspot"):
        cfg = resolve_defaults(TrainConfig(algorithm=algorithm, axes="YX"), 2, "cpu")
        margin = 112 if algorithm == "blindspot" else 56
        region = preview_region((256, 256), "YX", margin, 8, cfg)
        assert region is not None and _core((256, 256), region) == (256, 256)


def test_a_preview_too_dear_for_one_pixel_is_skipped():
    cfg = resolve_defaults(TrainConfig(algorithm="n2v", axes="YX", batch_size=1, patch_size=16), 2, "cpu")
    assert preview_region((64, 64), "YX", 200, 8, cfg) is None
    region = preview_region((3, 256, 256), "CYX", 8, 8, cfg)  # 16 x 16 patch steps: a much smaller box fits
    assert region is not None and region[0] == slice(None)
    core = _core((3, 256, 256), region)[1:]
    assert max(core) < 256 and preview_steps(core, 8, 8, cfg) <= PREVIEW_STEPS
    assert region[1].start == (256 - core[0]) // 2  # centred on what the person looks at
