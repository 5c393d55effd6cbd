"""TIFF, Zarr v2/v3 and OME-Zarr reading and writing keep data, axes and pixel sizes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from napari_selfsup_denoise.io import InputError, ngff, read_image, split_zarr_path, write_tiff


@pytest.fixture
def stack() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 4000, (3, 2, 40, 48), dtype=np.uint16)


def test_imagej_tiff_round_trip_keeps_axes_and_pixel_sizes(tmp_path, stack):
    src = tmp_path / "in.tif"
    meta = {"axes": "TCYX", "unit": "um", "finterval": 2.5}
    tifffile.imwrite(src, stack, imagej=True, resolution=(1 / 0.25, 1 / 0.5), metadata=meta)
    img = read_image(src)
    assert (img.axes, img.shape, img.unit) == ("TCYX", stack.shape, "micrometer")
    assert img.scale == pytest.approx({"X": 0.25, "Y": 0.5, "T": 2.5})
    out = write_tiff(tmp_path / "out.tif", img.data, img.axes, img.scale, img.unit)
    back = read_image(out)
    assert back.meta["imagej"] and back.axes == "TCYX"
    assert back.scale == pytest.approx(img.scale) and back.unit == "micrometer"
    np.testing.assert_array_equal(np.asarray(back.data), stack)
    img.close()
    back.close()


def test_ome_tiff_with_compression_reads_lazily_and_keeps_sizes(tmp_path, stack):
    src = tmp_path / "in.ome.tif"
    meta = {"axes": "QZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.8}
    tifffile.imwrite(src, stack, ome=True, compression="zlib", metadata=meta)
    img = read_image(src)
    assert img.axes == "SZYX" and img.scale == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 0.8})
    assert isinstance(img.data, zarr.Array)  # compressed: page by page, not loaded
    data = img.data.astype(np.float32) if hasattr(img.data, "astype") else np.asarray(img.data, np.float32)
    out = write_tiff(tmp_path / "out.ome.tif", np.asarray(data), img.axes, img.scale, img.unit)
    back = read_image(out)
    assert back.axes == "SZYX" and back.scale == pytest.approx(img.scale)
    np.testing.assert_array_equal(np.asarray(back.data), stack.astype(np.float32))


def test_tiff_write_is_atomic(tmp_path, stack):
    class Broken:
        shape, dtype = stack.shape, stack.dtype

        def __getitem__(self, idx):
            if idx[0] == 2:
                raise OSError("disk gone")
            return stack[idx]

    dst = tmp_path / "out.tif"
    with pytest.raises(OSError, match="disk gone"):
        write_tiff(dst, Broken(), "TCYX", {}, None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_array_axes_from_dimension_names(tmp_path, stack, zarr_format):
    path = tmp_path / "a.zarr"
    kw = {"dimension_names": ["t", "c", "y", "x"]} if zarr_format == 3 else {}
    arr = zarr.create_array(str(path), shape=stack.shape, chunks=(1, 1, 16, 16), dtype=stack.dtype,
                            zarr_format=zarr_format, **kw)  # fmt: skip
    arr[:] = stack
    if zarr_format == 2:
        arr.attrs["_ARRAY_DIMENSIONS"] = ["t", "c", "y", "x"]
    img = read_image(path)
    assert (img.kind, img.axes, img.meta["zarr_format"]) == ("zarr", "TCYX", zarr_format)
    np.testing.assert_array_equal(img.data[1, 0, 5:9], stack[1, 0, 5:9])


def test_zarr_group_inner_array_path(tmp_path, stack):
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("raw", shape=stack.shape, dtype=stack.dtype)[:] = stack
    g.create_array("other", shape=(2, 2), dtype="u1")
    assert split_zarr_path(tmp_path / "g.zarr" / "raw") == (tmp_path / "g.zarr", "raw")
    np.testing.assert_array_equal(np.asarray(read_image(tmp_path / "g.zarr" / "raw", "TCYX").data), stack)
    with pytest.raises(InputError, match="name one"):
        read_image(tmp_path / "g.zarr")


def _ome_group(path, data, zarr_format):
    g = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    g.create_array("0", shape=data.shape, chunks=(1, 16, 16), dtype=data.dtype)[:] = data
    g.create_array("1", shape=(data.shape[0], 20, 24), chunks=(1, 16, 16), dtype=data.dtype)
    ms = {
        "axes": [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]},
                                                                 {"type": "translation", "translation": [0, 10, 20]}]},
                     {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 1.0, 1.0]}]}],
    }  # fmt: skip
    ngff.write_multiscale_attrs(g, ms)
    return g


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_ome_zarr_reads_full_resolution_level(tmp_path, zarr_format):
    data = np.arange(4 * 40 * 48, dtype=np.float32).reshape(4, 40, 48)
    _ome_group(tmp_path / "img.ome.zarr", data, zarr_format)
    img = read_image(tmp_path / "img.ome.zarr")
    assert (img.kind, img.axes, img.shape, img.unit) == ("ome-zarr", "ZYX", data.shape, "micrometer")
    assert img.scale == {"Z": 2.0, "Y": 0.5, "X": 0.5} and img.meta["levels"] == 2
    assert ngff.level_factors(img.meta["ngff"], "ZYX", 3) == [[1, 2, 2], [1, 2, 2]]


def test_pyramid_block_means_and_transforms(tmp_path):
    data = np.arange(2 * 9 * 10, dtype=np.float32).reshape(2, 9, 10)
    g = zarr.open_group(str(tmp_path / "o.zarr"), mode="w")
    g.create_array("0", shape=data.shape, chunks=(1, 4, 4), dtype=data.dtype)[:] = data
    ngff.write_pyramid(g, [[1, 2, 2]])
    lvl = np.asarray(g["1"])
    assert lvl.shape == (2, 5, 5)
    assert lvl[0, 0, 0] == pytest.approx(data[0, :2, :2].mean())
    ms = ngff.build_multiscale("ZYX", {"Z": 1.0, "Y": 0.5, "X": 0.5}, "micrometer", [[1, 2, 2]], None)
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 1.0]
    assert ms["axes"][2] == {"name": "x", "type": "space", "unit": "micrometer"}


def test_missing_and_corrupt_inputs_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "nope.tif")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all" * 10)
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_image(bad)
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    with pytest.raises(InputError, match="unknown format"):
        read_image(tmp_path / "x.png")
