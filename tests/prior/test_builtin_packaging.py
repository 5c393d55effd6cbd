"""The shipped weights are package data: every file in prior/weights is matched by pyproject's package-data."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "napari_selfsup_denoise"


def _patterns() -> list[str]:
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert doc["build-system"]["build-backend"] == "setuptools.build_meta"  # the keys below are setuptools'
    return list(doc["tool"]["setuptools"]["package-data"]["napari_selfsup_denoise"])


def test_package_data_takes_every_weights_file():
    patterns = _patterns()
    assert any(p.startswith("prior/weights/") for p in patterns)
    folder = PACKAGE / "prior" / "weights"
    files = [p.relative_to(PACKAGE).as_posix() for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    left_out = [f for f in files if not any(fnmatch.fnmatch(f, p) for p in patterns)]
    assert left_out == [], f"these files would be missing from the wheel: {left_out}"
    assert fnmatch.fnmatch("prior/weights/blindspot_2d.sdmodel", next(p for p in patterns if "weights" in p))
