"""Run work units in this process, one at a time, with the engine's prediction generator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..config import PredictConfig
from ..engine.events import drain
from ..engine.model import Model
from .plan import region_px


def predict_units(
    model: Model,
    data: Any,
    axes: str,
    pcfg: PredictConfig,
    outs: list[Any],
    units: list,
    on_unit: Callable[[str, int], None],
) -> None:
    """Predict ``units`` one by one into ``outs`` (denoised[, uncertainty]); ``on_unit(key, px)`` after each."""
    unc = outs[1] if len(outs) > 1 else None
    for key, region in units:
        drain(predict_region(model, data, axes, pcfg, outs[0], unc, region))
        on_unit(key, region_px(region, axes))


def predict_region(model: Model, data: Any, axes: str, pcfg: PredictConfig, out: Any, unc: Any, region: tuple) -> Any:
    """The engine's prediction generator restricted to ``region``."""
    from ..engine.predict import predict

    return predict(model, data, pcfg, axes=axes, out=out, uncertainty_out=unc, region=region)
