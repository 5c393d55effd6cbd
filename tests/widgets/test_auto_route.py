"""Train on "auto": the noise is measured in the worker, not on napari's main thread (issue 10, item 13).

The measurement (issue 9: correlated noise picks structN2V) is numpy over up to 8 planes: 0.13 s of
main-thread CPU on the 3D sample, one turn of napari's event loop at the Train press, when it ran in
the widget's ``prepare``. These tests check where it runs and that its decision still reaches the run.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest


@pytest.fixture
def measured(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """One entry per noise measurement: whether it ran on the main thread."""
    from napari_selfsup_denoise.engine import route

    seen: list[bool] = []
    real = route.measure_noise_correlation

    def _spy(canon: Any) -> Any:
        seen.append(threading.current_thread() is threading.main_thread())
        return real(canon)

    monkeypatch.setattr(route, "measure_noise_correlation", _spy)
    return seen


def _row_correlated(seed: int = 0) -> np.ndarray:
    """Smooth blobs plus noise correlated along Y (each noise row shared with the next one)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :96]
    noise = rng.normal(0, 10, (97, 96))
    return (100 + 40 * np.sin(yy / 9.0) * np.cos(xx / 11.0) + noise[1:] + noise[:-1]).astype(np.float32)


def test_auto_measures_the_noise_in_the_worker(results, open_widget, noisy64, small, train_to_end, measured):
    viewer, _, widget = open_widget()
    viewer.add_image(noisy64, name="cells")
    small(widget, steps=3)
    widget.form.set_algorithm("auto")
    train_to_end(widget)
    assert measured == [False]  # once, in the worker (old code: [True, False], then [False, False])
    assert widget.holder.model.summary.get("algorithm_choice")  # what auto picked and why
    assert len(results(viewer, "cells")) == 1


def test_auto_on_row_correlated_noise_trains_structn2v_and_exports_it(
    results, open_widget, small, train_to_end, measured
):
    viewer, _, widget = open_widget()
    viewer.add_image(_row_correlated(), name="rows")
    small(widget, steps=3)
    widget.form.set_algorithm("auto")
    widget.form.uncertainty.setChecked(True)  # blind-spot only: dropped when auto picks structN2V
    train_to_end(widget)
    model = widget.holder.model
    assert measured == [False]  # measured once, in the worker (train reuses it)
    assert model.algorithm == "structn2v" and "structn2v along Y" in model.summary["algorithm_choice"]
    cfg, _, _ = widget._settings()  # "Export settings": what ran
    assert cfg.algorithm == "structn2v" and cfg.struct_axis.upper() == "Y"
    assert len(results(viewer, "rows")) == 1 and "rows uncertainty" not in viewer.layers
