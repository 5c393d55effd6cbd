"""The train widget reads axes from the layer's file, never guesses Z for a long first axis, and says why."""

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
    assert widget.form.axes_why.text() == "from the file"


def test_long_first_axis_is_guessed_as_time_and_short_as_z_with_a_note(open_widget):
    viewer, _, widget = open_widget()
    widget.layer.set_layer(viewer.add_image(np.zeros((200, 24, 20), np.float32), name="long"))
    assert widget.form.axes.text() == "TYX" and widget.form.axes_why.text().startswith("T? guessed")
    widget.layer.set_layer(viewer.add_image(np.zeros((30, 24, 20), np.float32), name="short"))
    assert widget.form.axes.text() == "ZYX"
    assert "Z? guessed" in widget.form.axes_why.text() and "type T for a time-lapse" in widget.form.axes_why.text()


def test_file_without_axes_metadata_is_still_guessed(open_widget, tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((30, 24, 20), np.uint8))  # tifffile records QYX: unnamed, not a sample axis
    viewer, _, widget = open_widget()
    viewer.open(str(path), plugin="napari")
    widget.layer.set_layer(viewer.layers[0])
    assert widget.form.axes.text() == "ZYX" and "Z? guessed" in widget.form.axes_why.text()
