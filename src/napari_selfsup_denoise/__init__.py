"""napari-selfsup-denoise: self-supervised denoising for napari and the command line.

The public API is Qt-free and imports torch lazily::

    from napari_selfsup_denoise import denoise, train, load_model, TrainConfig

    quick = denoise(noisy, axes="YX")  # zero-shot: the built-in prior, no training
    model = train(noisy, axes="YX", max_seconds=60)  # algorithm "auto": blind-spot in 2D
    clean = model.denoise(noisy)
    model.save("cells.sdmodel")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["train", "denoise", "load_model", "TrainConfig", "PredictConfig", "Model", "__version__"]

if TYPE_CHECKING:
    from .api import denoise, train
    from .config import PredictConfig, TrainConfig
    from .engine.model import Model, load_model

_LAZY = {
    "train": ".api",
    "denoise": ".api",
    "TrainConfig": ".config",
    "PredictConfig": ".config",
    "Model": ".engine.model",
    "load_model": ".engine.model",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
