"""Screenshots of the dock widget for the docs: mid-training (with the live preview) and the result.

Run under a virtual X server (``make screenshots``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python benchmarks/screenshots.py docs/images
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_selfsup_denoise.metrics import psnr

PLUGIN = "napari-selfsup-denoise"


def _pump(until: Callable[[], bool], timeout: float) -> bool:
    """Run the Qt event loop until ``until()`` is true or ``timeout`` seconds pass."""
    from qtpy.QtWidgets import QApplication

    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        QApplication.processEvents()
        if until():
            return True
        time.sleep(0.02)
    return False


def _open(sample: str) -> tuple[Any, Any]:
    import napari

    viewer = napari.Viewer(show=True, title="napari-selfsup-denoise")
    viewer.window.resize(1560, 960)
    viewer.open_sample(PLUGIN, sample)
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Self-supervised denoise")
    return viewer, widget


def main(argv: list[str] | None = None) -> int:
    """Train on a sample; save ``widget_training.png`` (mid-run) and ``widget_result.png`` in the output folder."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path, help="folder for the PNGs (e.g. docs/images)")
    ap.add_argument("--sample", default="nuclei2d", help="sample key from napari.yaml")
    ap.add_argument("--steps", type=int, default=60, help="steps to wait for before the mid-training shot")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    viewer, widget = _open(args.sample)
    source = viewer.layers[-1]
    # A light network so that the shots come quickly on a laptop CPU; Stop ends the run.
    widget.form.set_budget(600, "seconds")
    widget.form.base_channels.setValue(16)
    widget.form.batch_size.setValue(8)
    widget.form.preview_every.setValue(2.0)
    widget.form.advanced.expand(animate=False)
    widget.train_btn.click()
    preview = f"{source.name} preview"
    _pump(lambda: preview in viewer.layers and len(widget.plot.steps) >= args.steps, 600)
    viewer.window.screenshot(path=str(args.out / "widget_training.png"), canvas_only=False)
    widget.stop_btn.click()
    _pump(widget.is_idle, 300)
    widget.form.advanced.collapse(animate=False)
    result = viewer.layers[f"{source.name} denoised"]
    viewer.grid.enabled = True
    viewer.grid.shape = (1, 2)
    viewer.reset_view()
    _pump(lambda: False, 1)
    viewer.window.screenshot(path=str(args.out / "widget_result.png"), canvas_only=False)
    clean = source.metadata.get("clean")
    if clean is not None:
        span = float(clean.max() - clean.min())
        print(f"PSNR noisy {psnr(source.data, clean, span):.2f} dB -> denoised {psnr(result.data, clean, span):.2f} dB")
    print(f"{widget.status.text()}; wrote {args.out / 'widget_training.png'} and {args.out / 'widget_result.png'}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
