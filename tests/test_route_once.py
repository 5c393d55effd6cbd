"""A run measures the noise's correlation once: the front end routes, ``train`` reuses that measurement (issue 9).

The API and the command line route before they resolve the starting weights (``auto`` may pick structN2V);
before this, ``engine.train`` routed again and measured the same image a second time (8 ms - 0.1 s).
The widget's worker is covered in tests/widgets/test_auto_route.py.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from napari_selfsup_denoise import api
from napari_selfsup_denoise.cli import main
from napari_selfsup_denoise.config import TrainConfig
from napari_selfsup_denoise.engine.events import drain
from napari_selfsup_denoise.engine.route import CorrelatedNoiseWarning
from napari_selfsup_denoise.engine.train import train

TINY = {"max_steps": 1, "max_seconds": None, "patch_size": 32, "batch_size": 2, "depth": 2, "base_channels": 8}


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shape of every image whose noise correlation was measured."""
    from napari_selfsup_denoise.engine import route

    seen: list[tuple[int, ...]] = []
    real = route.measure_noise_correlation

    def _count(canon: Any) -> Any:
        seen.append(tuple(canon.shape))
        return real(canon)

    monkeypatch.setattr(route, "measure_noise_correlation", _count)
    return seen


def _correlated_y() -> np.ndarray:
    """Smooth blobs plus noise correlated along Y (each noise row shared with the next one)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:96, :96]
    noise = rng.normal(0, 10, (97, 96))
    return (100 + 40 * np.sin(yy / 9.0) * np.cos(xx / 11.0) + noise[1:] + noise[:-1]).astype(np.float32)


def test_api_train_on_auto_measures_once_and_still_picks_structn2v(measured: list) -> None:
    model = api.train(_correlated_y(), axes="YX", **TINY)
    assert len(measured) == 1, measured  # old code: 2 (api.train, then engine.train)
    assert model.config.algorithm == "structn2v" and model.config.struct_axis == "Y"
    assert model.summary["algorithm_choice"].startswith("structn2v along Y (auto: the noise is correlated")


def test_api_train_with_an_explicit_choice_measures_once_and_still_warns(measured: list) -> None:
    with pytest.warns(CorrelatedNoiseWarning, match="n2v was asked for and is used"):
        model = api.train(_correlated_y(), axes="YX", algorithm="n2v", **TINY)
    assert len(measured) == 1, measured
    assert model.config.algorithm == "n2v" and "n2v was asked for" in model.summary["message"]


def test_cli_train_measures_once(measured: list, tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "rows.tif", _correlated_y())
    args = ["--steps", "1", "--max-seconds", "0", "--patch-size", "32", "--batch-size", "2", "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 1-step model fails its self-check; this test is about the measurement
        rc = main(["train", str(tmp_path / "rows.tif"), "-o", str(tmp_path / "m.sdmodel"), *args, "--accept-suspect"])
    assert rc == 0 and len(measured) == 1, measured  # old code: 2


def test_engine_train_alone_still_measures_once(measured: list) -> None:
    model = drain(train(_correlated_y(), TrainConfig(axes="YX", **TINY)))
    assert measured == [(1, 1, 1, 1, 96, 96)]
    assert model.config.algorithm == "structn2v"
