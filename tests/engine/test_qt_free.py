"""The engine, API, CLI and batch code never import Qt, napari or magicgui."""

import json
import subprocess
import sys

MODULES = [
    "napari_selfsup_denoise",
    "napari_selfsup_denoise.api",
    "napari_selfsup_denoise.config",
    "napari_selfsup_denoise.engine.train",
    "napari_selfsup_denoise.engine.predict",
    "napari_selfsup_denoise.engine.model",
    "napari_selfsup_denoise.io",
    "napari_selfsup_denoise.cli",
    "napari_selfsup_denoise.batch",
]
FORBIDDEN = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "vispy")

CODE = """
import importlib, json, sys
found = {}
for name in %r:
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("napari_selfsup_denoise"):
            continue
        raise
import napari_selfsup_denoise as pkg
pkg.train, pkg.load_model, pkg.TrainConfig
bad = sorted(m for m in sys.modules if m.split(".")[0] in %r)
print(json.dumps(bad))
"""


def test_engine_imports_without_qt():
    out = subprocess.run(
        [sys.executable, "-c", CODE % (MODULES, FORBIDDEN)], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == []
