"""One rule for an image's axes (axes.choose_axes), with the reason, in the CLI, the API and the io layer."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_selfsup_denoise import load_model
from napari_selfsup_denoise.axes import choose_axes
from napari_selfsup_denoise.cli import main
from napari_selfsup_denoise.io import read_image

TINY = ["--steps", "4", "--patch-size", "16", "--batch-size", "2", "--set", "base_channels=4", "--set", "depth=1"]
TINY += ["--algorithm", "n2v"]  # written for N2V, the default before "auto"


@pytest.mark.parametrize(
    ("kwargs", "label"),
    [
        ({"given": "tyx"}, "TYX (given)"),
        ({"recorded": "TYX"}, "TYX (from the file)"),
        ({"recorded": "TYX", "given": "ZYX"}, "ZYX (given)"),
        ({"recorded": "CYX"}, "CYX (from the file)"),
        ({"recorded": "YX"}, "ZYX? (guessed: a Z stack, so a 3D model will be trained; give T for a time-lapse)"),
        ({"model_axes": "ZYX"}, "ZYX (the model's training axes)"),
        ({"model_axes": "YX"}, "TYX? (guessed: the model is 2D, so the planes are denoised one by one)"),
        ({"recorded": "ZYX", "model_axes": "YX"},
         "TYX (from the file; Z read as T: the 2D model denoises the planes one by one)"),
    ],
)  # fmt: skip
def test_one_rule_for_the_axes_with_the_reason(kwargs, label):
    assert choose_axes((30, 24, 20), **kwargs).label() == label


def test_a_long_plain_stack_is_guessed_as_a_time_lapse_and_says_so():
    choice = choose_axes((200, 24, 20))
    assert choice.axes == "TYX" and choice.guessed
    assert "200 planes is more than a Z stack usually has" in choice.why


def test_a_tiff_without_axes_metadata_is_guessed_not_read_as_samples(tmp_path):
    plain, movie = tmp_path / "plain.tif", tmp_path / "movie.tif"
    tifffile.imwrite(plain, np.zeros((30, 24, 20), np.uint16))  # tifffile records QYX: an unnamed axis
    tifffile.imwrite(movie, np.zeros((30, 24, 20), np.uint16), imagej=True, metadata={"axes": "TYX"})
    img = read_image(plain)
    assert img.axes == "" and img.axes_choice().label().startswith("ZYX? (guessed")  # was SYX: 2D per plane
    assert read_image(movie).axes_choice().label() == "TYX (from the file)"


def _stack(path, planes: int) -> None:
    rng = np.random.default_rng(0)
    tifffile.imwrite(path, (100 + rng.normal(0, 10, (planes, 32, 32))).astype(np.float32), photometric="minisblack")


def test_cli_trains_a_plain_stack_as_the_widget_would_and_says_why(tmp_path, capsys):
    src, out = tmp_path / "stack.tif", tmp_path / "m.sdmodel"
    _stack(src, 8)
    assert main(["train", str(src), "-o", str(out), "--quiet", "--set", "patch_size_z=4", *TINY]) == 0
    err = capsys.readouterr().err
    assert "axes ZYX? (guessed: a Z stack, so a 3D model will be trained; give T for a time-lapse)" in err
    assert load_model(out).axes == "ZYX"  # the old CLI read SYX and trained 2D


def test_cli_denoises_a_plain_stack_plane_by_plane_with_a_2d_model(tmp_path):
    movie, plain, model, out = (tmp_path / n for n in ("movie.tif", "plain.tif", "m.sdmodel", "out.tif"))
    rng = np.random.default_rng(1)
    tifffile.imwrite(movie, (100 + rng.normal(0, 10, (2, 32, 32))).astype(np.float32), imagej=True,
                     metadata={"axes": "TYX"})  # fmt: skip
    _stack(plain, 3)
    assert main(["train", str(movie), "-o", str(model), "--quiet", *TINY]) == 0
    rc = main(["denoise", "-m", str(model), str(plain), "-o", str(out), "--quiet", "--accept-suspect"])
    assert rc == 0 and read_image(out).shape == (3, 32, 32)


@pytest.mark.parametrize(("planes", "given", "axes"), [(200, None, "TYX"), (8, None, "ZYX"), (8, "tyx", "TYX")])
def test_zero_shot_batch_makes_each_model_for_the_axes_of_the_one_rule(tmp_path, planes, given, axes):
    from napari_selfsup_denoise.batch import BatchOptions, denoise_files

    src = tmp_path / "stack.tif"
    _stack(src, planes)
    seen: list[str | None] = []

    def _make(data, chosen):  # stands in for the zero-shot prior (cli._prior.zero_shot)
        seen.append(chosen)
        raise ValueError("only the axes are checked")

    (res,) = denoise_files(_make, [str(src)], str(tmp_path / "out.tif"), BatchOptions(axes=given))
    assert seen == [axes] and res.status == "failed"  # the old runner passed None for a plain TIFF
