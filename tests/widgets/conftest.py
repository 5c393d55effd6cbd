"""Fixtures for the dock-widget tests: a real viewer under Xvfb, the widget opened through the manifest."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")

# vispy needs an OpenGL context: Qt's offscreen platform cannot add image layers, so these tests run
# on an X display, which pytest-xvfb starts (`make xvfb` installs Xvfb and the xcb libraries).
if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = "xcb"

# Leave a core to the event loop: the tests check that the UI keeps ticking while training.
os.environ.setdefault("SELFSUP_DENOISE_THREADS", "1")

PLUGIN = "napari-selfsup-denoise"
TRAIN_WIDGET = "Self-supervised denoise"
DENOISE_WIDGET = "Denoise with a model"
WAIT_MS = 120_000


def _small(widget: Any, steps: int | None = 20, seconds: float | None = None) -> None:
    f = widget.form
    f.set_algorithm("n2v")  # tiny N2V runs: these tests are about the widget, not the algorithm
    f.set_budget(steps, "steps") if steps is not None else f.set_budget(seconds, "seconds")
    f.patch_size.setValue(32)
    f.patch_size_z.setValue(4)
    f.batch_size.setValue(4)
    f.base_channels.setValue(8)
    f.net_depth.setValue(2)
    f.preview_every.setValue(0.5)


@pytest.fixture
def noisy64() -> np.ndarray:
    """A 64 x 64 image: smooth blobs plus Gaussian noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    clean = 100 + 50 * np.sin(yy / 7.0) * np.cos(xx / 9.0)
    return (clean + rng.normal(0, 10, clean.shape)).astype(np.float32)


def _no_display() -> bool:
    return sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@pytest.fixture(scope="session", autouse=True)
def _qt_platform() -> None:
    """Without a display Qt would abort on start: fall back to offscreen (the viewer tests then skip)."""
    if _no_display():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"


@pytest.fixture(autouse=True)
def _needs_display(request: pytest.FixtureRequest) -> None:
    """Skip viewer tests cleanly (before Qt starts and aborts) when there is no display to draw on."""
    if "open_widget" in request.fixturenames and _no_display():
        pytest.skip("no X display: `make xvfb` installs Xvfb, which pytest-xvfb then starts")


@pytest.fixture
def open_widget(make_napari_viewer: Callable[..., Any]) -> Callable[..., tuple[Any, Any, Any]]:
    """Return ``open(name=TRAIN_WIDGET) -> (viewer, dock, widget)``, the widget added through the manifest."""

    def _open(name: str = TRAIN_WIDGET) -> tuple[Any, Any, Any]:
        viewer = make_napari_viewer()
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name)
        return viewer, dock, widget

    return _open


@pytest.fixture
def errors() -> Callable[[], list[str]]:
    """Messages of the error notifications dispatched since the test started."""
    from napari.utils.notifications import NotificationSeverity, notification_manager

    start = len(notification_manager.records)

    def _errors() -> list[str]:
        new = notification_manager.records[start:]
        return [str(n.message) for n in new if n.severity == NotificationSeverity.ERROR]

    return _errors


@pytest.fixture
def small() -> Callable[..., None]:
    """``small(widget, steps=20, seconds=None)``: a tiny network and a short budget in the form."""
    return _small


@pytest.fixture
def wait_idle(qtbot: Any) -> Callable[..., None]:
    """``wait_idle(widget, timeout=WAIT_MS)``: wait until the widget's worker has finished."""

    def _wait(widget: Any, timeout: int = WAIT_MS) -> None:
        qtbot.waitUntil(widget.is_idle, timeout=timeout)

    return _wait


@pytest.fixture
def wait_for(qtbot: Any) -> Callable[..., None]:
    """``wait_for(condition)``: process events until ``condition()`` is true (WAIT_MS at most)."""

    def _wait(condition: Callable[[], bool], timeout: int = WAIT_MS) -> None:
        qtbot.waitUntil(condition, timeout=timeout)

    return _wait


@pytest.fixture
def train_to_end(qtbot: Any, errors: Callable[[], list[str]]) -> Callable[..., None]:
    """``train_to_end(widget)``: press Train, wait for the run and its result, and assert nothing went wrong."""

    def _run(widget: Any) -> None:
        worker = widget.start_training()
        assert worker is not None, errors()
        with qtbot.waitSignal(worker.finished, timeout=120_000):
            pass
        qtbot.waitUntil(widget.is_idle, timeout=WAIT_MS)
        assert errors() == []

    return _run


@pytest.fixture
def results() -> Callable[..., list[Any]]:
    """``results(viewer, "cells", suffix="denoised")``: the result layers of "cells" in the viewer.

    A result is named "<source> <suffix>", with " (suspect)" added when its self-check failed (these
    tests' tiny runs often fail it) and napari's " [n]" for a second one.
    """
    import re

    def _find(viewer: Any, source: str, suffix: str = "denoised") -> list[Any]:
        pattern = re.compile(rf"{re.escape(source)} {re.escape(suffix)}( \(suspect\))?( \[\d+\])?")
        return [layer for layer in viewer.layers if pattern.fullmatch(layer.name)]

    return _find
