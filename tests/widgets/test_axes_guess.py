"""Both widgets read axes from the layer's file, never guess Z for a long first axis, and say why."""

from __future__ import annotations

import numpy as np
import tifffile


def test_time_lapse_file_gives_tyx_from_its_metadata(open_widget, tmp_path):
    path = tmp_path / "movie.tif"
    movie = np.random.default_rng(0).integers(0, 200, (40, 24, 20), dtype=np.uint8)
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    viewer, _, widget = open_widget()
    viewer.open(str(path), plugin="napari")
    widget.layer.set_layer(viewer.layers[0])
    assert widget.form.axes.text() == "TYX"
    assert widget.form.axes_why.text() == "TYX (from the file)"


def test_long_first_axis_is_guessed_as_time_and_short_as_z_with_a_note(open_widget):
    viewer, _, widget = open_widget()
    widget.layer.set_layer(viewer.add_image(np.zeros((200, 24, 20), np.float32), name="long"))
    assert widget.form.axes.text() == "TYX" and widget.form.axes_why.text().startswith("TYX? (guessed: 200 planes")
    widget.layer.set_layer(viewer.add_image(np.zeros((30, 24, 20), np.float32), name="short"))
    assert widget.form.axes.text() == "ZYX"
    why = widget.form.axes_why.text()
    assert why.startswith("ZYX? (guessed") and "give T for a time-lapse" in why


def test_file_without_axes_metadata_is_still_guessed(open_widget, tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((30, 24, 20), np.uint8))  # tifffile records QYX: unnamed, not a sample axis
    viewer, _, widget = open_widget()
    viewer.open(str(path), plugin="napari")
    widget.layer.set_layer(viewer.layers[0])
    assert widget.form.axes.text() == "ZYX" and widget.form.axes_why.text().startswith("ZYX? (guessed")


def _model(axes: str, shape: tuple[int, ...]):
    from napari_selfsup_denoise import train

    data = np.random.default_rng(0).normal(100, 10, shape).astype(np.float32)
    return train(data, axes=axes, algorithm="n2v", max_steps=2, max_seconds=None, patch_size=16, patch_size_z=4,
                 batch_size=2, depth=1, base_channels=4)  # fmt: skip


def test_denoise_widget_reads_the_axes_from_the_file(open_widget, tmp_path, errors):
    path = tmp_path / "movie.tif"
    movie = np.random.default_rng(0).integers(0, 200, (12, 24, 20), dtype=np.uint8)
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})
    viewer, _, widget = open_widget("Denoise with a model")
    viewer.open(str(path), plugin="napari")
    section = widget.section
    section.layer.set_layer(viewer.layers[0])
    widget.holder.set(_model("ZYX", (12, 24, 20)))  # a 3D model: the old widget took its ZYX for the time-lapse
    assert section.axes_why.text() == "TYX (from the file)"
    assert section.denoise(viewer.layers[0]) is None  # refused before any work, with the reason
    assert any("3D" in e and "TYX" in e for e in errors())
    widget.holder.set(_model("TYX", (12, 24, 20)))  # a 2D model denoises the frames
    assert section.axes_for(viewer.layers[0]) == "TYX"
