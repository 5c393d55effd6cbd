"""Packages we exported load back as the original model; foreign packages and bad targets get clear errors."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import yaml

from napari_selfsup_denoise import load_model
from napari_selfsup_denoise.engine.model_file import ModelFileError, read_metadata
from napari_selfsup_denoise.export import ExportInputError, export_bmz


@pytest.mark.parametrize("case", ["n2v", "blindspot", "n2v_3d"])
def test_reimported_package_gives_identical_output(packages, case):
    model, path, image = packages[case]
    again = load_model(path)
    assert again.algorithm == model.algorithm and again.summary == model.summary
    np.testing.assert_array_equal(again.denoise(image, device="cpu"), model.denoise(image, device="cpu"))
    assert read_metadata(path)["normalisation"] == model.norm.to_dict()


def test_model_keeps_a_crop_of_its_training_image_across_save_and_load(packages, tmp_path):
    model, path, image = packages["blindspot"]
    least = 2 * model.margin + model.multiple
    assert model.sample.shape == (1, max(64, least), max(64, least))
    assert np.isin(model.sample, image).all()
    np.testing.assert_array_equal(load_model(model.save(tmp_path / "m.sdmodel")).sample, model.sample)
    np.testing.assert_array_equal(load_model(path).sample, model.sample)


def test_export_without_sample_or_image_says_what_to_pass(packages, tmp_path):
    model, _, _ = packages["n2v"]
    old = load_model(packages["n2v"][1])
    old.sample = None
    with pytest.raises(ExportInputError, match="image="):
        export_bmz(old, tmp_path / "m.zip")
    assert model.sample is not None


def _foreign_package(path, **config):
    doc = {"type": "model", "format_version": "0.5.12", "name": "Cell segmenter", "config": config,
           "weights": {"torchscript": {"source": "weights.pt"}}}  # fmt: skip
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("rdf.yaml", yaml.safe_dump(doc))
        zf.writestr("weights.pt", b"PK not really")
    return path


def test_foreign_package_is_refused_with_what_is_supported(tmp_path):
    path = _foreign_package(tmp_path / "other.zip", stardist={"thresholds": 0.5})
    with pytest.raises(ModelFileError, match="made by another tool.*'Cell segmenter'.*torchscript.*only the packages"):
        load_model(path)


def test_package_without_its_model_file_is_refused(tmp_path):
    path = _foreign_package(tmp_path / "broken.zip", napari_selfsup_denoise={"format": "napari-selfsup-denoise"})
    with pytest.raises(ModelFileError, match="lacks its model file"):
        load_model(path)


def test_zip_that_is_not_a_package_is_refused(tmp_path):
    path = tmp_path / "checkpoint.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"\x80\x04")
    with pytest.raises(ModelFileError, match="not a BioImage Model Zoo package.*refused"):
        load_model(path)


def test_existing_target_needs_overwrite(packages, tmp_path):
    model, _, image = packages["n2v"]
    target = tmp_path / "taken.zip"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_bmz(model, target, image=image)
    assert target.read_bytes() == b"keep me"


def test_missing_folder_and_bad_name_are_refused_before_any_work(packages, tmp_path):
    model, _, image = packages["n2v"]
    with pytest.raises(ExportInputError, match="does not exist"):
        export_bmz(model, tmp_path / "nowhere" / "m.zip", image=image)
    with pytest.raises(ExportInputError, match="letters, digits"):
        export_bmz(model, tmp_path / "m.zip", image=image, name="my/model")
    assert not (tmp_path / "m.zip").exists()


def _unwritable_folder(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):  # root ignores permission bits; sysfs refuses new files even to root
        folder.chmod(0o700)
        folder = "/sys"
        if not os.path.isdir(folder) or os.access("/sys/.", os.W_OK) and _can_create(folder):
            pytest.skip("no unwritable folder available to this user")
    return folder


def _can_create(folder):
    try:
        fd = os.open(os.path.join(folder, ".probe"), os.O_CREAT | os.O_WRONLY)
    except OSError:
        return False
    os.close(fd)
    os.unlink(os.path.join(folder, ".probe"))
    return True


def test_unwritable_folder_is_refused(packages, tmp_path):
    model, _, image = packages["n2v"]
    folder = _unwritable_folder(tmp_path)
    with pytest.raises(PermissionError, match="not writable.*choose another folder"):
        export_bmz(model, os.path.join(folder, "m.zip"), image=image)


def test_package_mode_follows_umask(passing, tmp_path):
    model, _ = passing
    old = os.umask(0o022)
    try:
        path = export_bmz(model, tmp_path / "shared.zip")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["shared.zip"]  # no temporary file left


def test_export_never_writes_inside_an_input(packages, tmp_path):
    import zarr

    from napari_selfsup_denoise.io import OutputError

    model, _, image = packages["n2v"]
    store = tmp_path / "layer.zarr"
    arr = zarr.create_array(str(store), shape=image.shape, dtype=image.dtype)
    arr[:] = image
    before = sorted(p.relative_to(store) for p in store.rglob("*"))
    with pytest.raises(OutputError, match="input"):  # the image's own store (the API)
        export_bmz(model, store / "pkg.zip", image=arr)
    with pytest.raises(OutputError, match="input"):  # a layer's file, as the widget passes it
        export_bmz(model, store / "pkg", inputs=[store])
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == before
