import numpy as np
import pytest

from napari_selfsup_denoise.axes import AxesError, from_canonical, guess_axes, to_canonical, validate_axes


@pytest.mark.parametrize(
    ("axes", "ndim", "fragment"),
    [
        ("YQ", 2, "use only the letters"),
        ("YYX", 3, "repeat"),
        ("ZY", 2, "must contain both Y and X"),
        ("ZYX", 2, "has 2 dimensions"),
        ("", 2, "non-empty"),
    ],
)
def test_bad_axes_say_what_was_expected(axes, ndim, fragment):
    with pytest.raises(AxesError, match=fragment):
        validate_axes(axes, ndim)


def test_axes_are_upper_cased():
    assert validate_axes("tzyx", 4) == "TZYX"


@pytest.mark.parametrize(
    ("shape", "rgb", "expected"),
    [
        ((64, 64), False, "YX"),
        ((10, 64, 64), False, "ZYX"),
        ((64, 64, 3), True, "YXC"),
        ((64, 64, 3), False, "YXC"),
        ((5, 10, 64, 64), False, "TZYX"),
        ((10, 2, 64, 64), False, "ZCYX"),
        ((150, 64, 64), False, "ZYX"),
        ((200, 133, 162), False, "TYX"),  # a long first axis is a time-lapse, not a Z stack
        ((200, 2, 64, 64), False, "TCYX"),
    ],
)
def test_guess_axes(shape, rgb, expected):
    assert guess_axes(shape, rgb) == expected


def test_canonical_round_trip_is_a_view():
    img = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 5, 3, 4)  # T X C Y
    canon = to_canonical(img, "TXCY")
    assert canon.shape == (1, 2, 3, 1, 4, 5)
    assert np.shares_memory(canon, img)
    assert canon[0, 1, 2, 0, 3, 4] == img[1, 4, 2, 3]
    np.testing.assert_array_equal(from_canonical(np.ascontiguousarray(canon), "TXCY"), img)
