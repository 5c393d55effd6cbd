"""Applying a model to other layers (lazy ones included), and saving / loading / exporting it."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from napari_selfsup_denoise._widgets._model_box import IMAGE_PLACEHOLDER, TARGET_PLACEHOLDER, headless_settings
from napari_selfsup_denoise.config import TrainConfig, from_dict

DENOISE_WIDGET = "Denoise with a model"


@pytest.fixture(scope="module")
def model():
    """A tiny 2D N2V model (trained without Qt)."""
    from napari_selfsup_denoise.api import train

    rng = np.random.default_rng(0)
    img = rng.normal(100, 10, (64, 64)).astype(np.float32)
    cfg = TrainConfig(
        algorithm="n2v", max_steps=5, max_seconds=None, patch_size=32, batch_size=4, base_channels=8, depth=2
    )
    return train(img, cfg)


def test_lazy_layer_is_denoised_chunk_by_chunk_into_zarr(open_widget, qtbot, tmp_path, model, errors, wait_idle):
    da = pytest.importorskip("dask.array")
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    stack = np.random.default_rng(1).normal(100, 10, (3, 64, 64)).astype(np.float32)
    lazy = da.from_array(stack, chunks=(1, 64, 64))
    viewer.add_image(lazy, name="big", scale=(4.0, 1.0, 1.0))
    widget.holder.set(model)
    out_path = tmp_path / "big-denoised.zarr"
    widget.section.output.setText(str(out_path))
    worker = widget.section.denoise(viewer.layers["big"])
    assert worker is not None, errors()
    wait_idle(widget.section)
    out = viewer.layers["big denoised"]
    assert not isinstance(out.data, np.ndarray)  # added lazily, backed by the zarr on disk
    assert out_path.exists()
    np.testing.assert_allclose(out.scale, (4.0, 1.0, 1.0))
    expected = model.denoise(stack, axes="TYX")  # a 2D model denoises the stack slice by slice
    np.testing.assert_allclose(np.asarray(out.data[:]), expected, rtol=1e-4, atol=1e-3)


def test_in_memory_layer_and_stop_button_state(open_widget, qtbot, model, errors, wait_idle):
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    assert not widget.section.run_btn.isEnabled()  # no model yet
    widget.holder.set(model)
    assert widget.section.run_btn.isEnabled()
    img = np.random.default_rng(2).normal(100, 10, (80, 72)).astype(np.float32)
    viewer.add_image(img, name="other")
    at_insert: list[tuple[bool, list[str]]] = []
    viewer.layers.events.inserted.connect(
        lambda e: at_insert.append((e.value.visible, [x.name for x in viewer.layers.selection]))
    )
    widget.section.run_btn.click()
    assert widget.section.stop_btn.isEnabled()
    wait_idle(widget.section)
    assert errors() == []
    out = viewer.layers["other denoised"]
    assert isinstance(out.data, np.ndarray) and out.visible and list(viewer.layers.selection) == [out]
    assert at_insert == [(False, ["other"])]  # old code: [(True, ["other"])], selected in the same turn (item 13)
    assert widget.section.run_btn.isEnabled() and not widget.section.stop_btn.isEnabled()


def test_denoise_without_model_or_with_wrong_channels_notifies(open_widget, model, errors):
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    layer = viewer.add_image(np.zeros((3, 32, 32), np.float32), name="x")
    assert widget.section.denoise(layer) is None
    widget.holder.set(model)
    widget.section.axes.setText("CYX")
    assert widget.section.denoise(layer) is None
    assert any("no model yet" in m for m in errors()), errors()
    assert any("trained on 1 channel(s) but the image has 3" in m for m in errors()), errors()
    assert widget.section.is_idle()


def test_save_load_and_export_settings(open_widget, tmp_path, model, errors):
    _, _, widget = open_widget()
    box = widget.model_box
    assert not box.save_btn.isEnabled()
    widget.holder.set(model)
    path = box.save(tmp_path / "m.sdmodel")
    assert path is not None and path.exists()
    widget.holder.set(None)
    loaded = box.load(path)
    assert widget.holder.model is loaded and loaded.axes == model.axes
    assert "n2v" in box.label.text()
    (tmp_path / "evil.sdmodel").write_bytes(b"\x80\x04not a model")
    assert box.load(tmp_path / "evil.sdmodel") is None
    assert any("pickle" in m for m in errors()), errors()
    settings = box.export(tmp_path / "settings.json")
    doc = json.loads(settings.read_text())
    assert doc["command"].startswith("selfsup-denoise run")
    assert from_dict(doc["config"]) == widget.form.config()


def test_save_and_export_never_write_the_layer_file(open_widget, tmp_path, model, errors):
    import tifffile

    src = tmp_path / "cells.tif"
    tifffile.imwrite(src, (np.random.default_rng(0).random((64, 64)) * 1000).astype(np.uint16))
    before = src.read_bytes()
    viewer, _, widget = open_widget()
    viewer.open(str(src), plugin="napari")
    widget.layer.set_layer(viewer.layers[0])
    widget.holder.set(model)
    assert widget.model_box.save(src) is None
    assert widget.model_box.export(src) is None
    assert src.read_bytes() == before
    assert sum("would overwrite the input" in m for m in errors()) == 2, errors()


def test_exported_command_rebuilds_the_exact_config(open_widget):
    pytest.importorskip("napari_selfsup_denoise.cli")
    from napari_selfsup_denoise.cli._commands import train_config
    from napari_selfsup_denoise.cli._parser import build_parser

    viewer, _, widget = open_widget()
    viewer.add_image(np.zeros((32, 32), np.float32), name="a")
    viewer.add_image(np.zeros((32, 32), np.float32), name="b")
    f = widget.form
    f.set_algorithm("n2n")
    widget.target.set_layer(viewer.layers["b"])
    f.axes.setText("YX")
    f.set_budget(250, "steps")
    f.net_depth.setValue(2)
    f.augment.setChecked(False)
    f.seed.setValue(-1)
    cfg, *_ = widget._settings()
    command = shlex.split(headless_settings(*widget._settings())["command"])
    assert command[:3] == ["selfsup-denoise", "run", IMAGE_PLACEHOLDER] and "--target" in command
    assert command[command.index("--target") + 1] == TARGET_PLACEHOLDER
    args = build_parser().parse_args(command[1:])
    assert train_config(args, "YX") == cfg


def test_denoise_output_may_not_be_the_layer_store(open_widget, tmp_path, model, errors):
    zarr = pytest.importorskip("zarr")
    src = tmp_path / "cells.zarr"
    arr = zarr.create_array(str(src), shape=(64, 64), chunks=(32, 32), dtype="float32")
    arr[:] = np.random.default_rng(0).normal(100, 10, (64, 64))
    viewer, _, widget = open_widget(DENOISE_WIDGET)
    layer = viewer.open(str(src), plugin="napari")[0]
    widget.holder.set(model)
    widget.section.output.setText(str(src))
    assert widget.section.denoise(layer) is None
    assert any("would overwrite the input" in m for m in errors()), errors()
    np.testing.assert_array_equal(zarr.open_array(str(src))[:], arr[:])
