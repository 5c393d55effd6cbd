"""Axes strings over S, T, C, Z, Y, X: validation, guessing, canonical order.

Conventions
-----------
- ``S`` (samples) and ``T`` (time) are independent samples: patches are drawn
  from every sample and time point, the network never sees across them.
- ``C`` (channels) are the network's input channels. One network sees all
  channels at once so it can use the signal shared between channels; masked
  positions are the same in every channel, so correlated noise between
  channels (bleed-through) cannot leak into the blind spot.
- ``Z`` makes training 3D; without it training is 2D over ``YX``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

AXES_ALLOWED = "STCZYX"
CANONICAL = "STCZYX"


class AxesError(ValueError):
    """The axes string does not describe the image."""


def validate_axes(axes: str, ndim: int | None = None) -> str:
    """Check an axes string and return it upper-cased.

    Parameters
    ----------
    axes : str
        Letters from ``STCZYX``, each at most once, including ``Y`` and ``X``.
    ndim : int, optional
        Number of dimensions of the image the axes describe.

    Returns
    -------
    str
        The upper-cased axes string.

    Raises
    ------
    AxesError
        With a message that says what was expected.
    """
    if not isinstance(axes, str) or not axes:
        raise AxesError(f"axes must be a non-empty string such as 'YX' or 'ZYX', got {axes!r}")
    up = axes.upper()
    bad = sorted(set(up) - set(AXES_ALLOWED))
    if bad:
        raise AxesError(
            f"axes {axes!r} contain {''.join(bad)!r}; use only the letters S (sample), T (time), C (channel), Z, Y, X"
        )
    dup = sorted({a for a in up if up.count(a) > 1})
    if dup:
        raise AxesError(f"axes {axes!r} repeat {''.join(dup)!r}; each letter may appear once")
    if "Y" not in up or "X" not in up:
        raise AxesError(f"axes {axes!r} must contain both Y and X")
    if ndim is not None and len(up) != ndim:
        raise AxesError(
            f"axes {axes!r} have {len(up)} letters but the image has {ndim} dimensions; "
            f"give one letter per dimension, e.g. {guess_axes_for_ndim(ndim)!r}"
        )
    return up


def guess_axes_for_ndim(ndim: int) -> str:
    """Return a plausible axes string for ``ndim`` dimensions (no shape information)."""
    return {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TCZYX", 6: "STCZYX"}.get(ndim, "YX")


MAX_GUESSED_Z = 150  # Z stacks rarely have more planes; time-lapses often have more frames


def guess_axes(shape: Sequence[int], rgb: bool = False) -> str:
    """Guess axes from an image shape.

    Parameters
    ----------
    shape : sequence of int
        The image shape.
    rgb : bool
        True when the last dimension holds colour channels (napari's ``rgb``).

    Returns
    -------
    str
        ``YX`` for 2D; ``YXC`` for RGB(A) or a short last axis; ``ZYX`` for 3D
        stacks; ``TZYX``, ``TCZYX``, ``STCZYX`` for more dimensions, with a
        short (<= 4) leading/second axis read as channels. A leading axis
        longer than ``MAX_GUESSED_Z`` is read as time (``TYX``, ``TCYX``), not Z.
    """
    nd = len(shape)
    if nd < 2:
        raise AxesError(f"an image needs at least 2 dimensions (Y, X), got shape {tuple(shape)}")
    if rgb or (nd == 3 and shape[-1] in (3, 4) and min(shape[:2]) > 4):
        return "YXC" if nd == 3 else guess_axes_for_ndim(nd - 1) + "C"
    if nd == 4 and shape[1] <= 4 < min(shape[2:]):
        return "ZCYX" if shape[0] <= MAX_GUESSED_Z else "TCYX"
    if nd > 6:
        raise AxesError(f"cannot guess axes for {nd} dimensions; at most 6 (STCZYX) are supported")
    if nd == 3 and shape[0] > MAX_GUESSED_Z:
        return "TYX"
    return guess_axes_for_ndim(nd)


@dataclass(frozen=True)
class AxesChoice:
    """Axes chosen for an image and why, as every front-end shows them.

    Attributes
    ----------
    axes : str
        The axes (validated against the image's dimensions).
    why : str
        Where they came from: ``"given"``, ``"from the file"``, ``"from the
        viewer's labels"``, ``"the model's training axes"``, or ``"guessed: ..."``
        with what the guess means and how to correct it.
    """

    axes: str
    why: str

    @property
    def guessed(self) -> bool:
        """True when the axes come from the shape alone (worth a look)."""
        return self.why.startswith("guessed")

    def label(self) -> str:
        """``"TYX (from the file)"``, or ``"ZYX? (guessed: ...)"`` for a guess."""
        return f"{self.axes}{'?' if self.guessed else ''} ({self.why})"


def choose_axes(
    shape: Sequence[int],
    *,
    given: str | None = None,
    recorded: str | None = None,
    recorded_from: str = "the file",
    rgb: bool = False,
    model_axes: str | None = None,
) -> AxesChoice:
    """The one rule for an image's axes, used by the CLI, the Python API and both widgets.

    In order: the axes the person ``given``; those ``recorded`` with the image
    (file metadata, the viewer's labels; ignored when they do not fit the
    shape); a model's training axes when they fit; else :func:`guess_axes`.
    When the model is 2D, a recorded or guessed Z is read as T (its planes
    are denoised one by one); a typed Z is kept (and refused by the model).

    Parameters
    ----------
    shape : sequence of int
        The image's shape.
    given : str, optional
        Typed by the person (``--axes``, ``axes=``, the widget's field): always wins.
    recorded : str, optional
        Recorded with the image; empty or None when nothing is known.
    recorded_from : str
        Where ``recorded`` comes from, for the explanation.
    rgb : bool
        The last axis holds colour channels.
    model_axes : str, optional
        The training axes of the model that will denoise the image.

    Returns
    -------
    AxesChoice

    Raises
    ------
    AxesError
        If ``given`` does not fit the image.
    """
    nd = len(shape)
    if given:
        return AxesChoice(validate_axes(given, nd), "given")
    flat = model_axes is not None and spatial_ndim(model_axes) == 2  # a 2D model denoises Z planes one by one
    if recorded:
        try:
            axes = validate_axes(recorded, nd)
        except AxesError:
            axes = ""
        if axes and flat and "Z" in axes and "T" not in axes:
            why = f"from {recorded_from}; Z read as T: the 2D model denoises the planes one by one"
            return AxesChoice(axes.replace("Z", "T"), why)
        if axes:
            return AxesChoice(axes, f"from {recorded_from}")
    if model_axes and len(model_axes) == nd:
        return AxesChoice(validate_axes(model_axes, nd), "the model's training axes")
    guess = guess_axes(shape, rgb=rgb)
    if flat and "Z" in guess and "T" not in guess:
        return AxesChoice(guess.replace("Z", "T"), "guessed: the model is 2D, so the planes are denoised one by one")
    if "Z" in guess:
        return AxesChoice(guess, "guessed: a Z stack, so a 3D model will be trained; give T for a time-lapse")
    if guess[0] == "T" and guess[1:] in ("YX", "CYX"):
        why = f"guessed: {shape[0]} planes is more than a Z stack usually has (a time-lapse); give Z for a 3D stack"
        return AxesChoice(guess, why)
    return AxesChoice(guess, "guessed from the shape")


def to_canonical(image: np.ndarray, axes: str) -> np.ndarray:
    """Return a view of ``image`` ordered ``S, T, C, Z, Y, X`` with missing axes of size 1.

    No data is copied: the result is a transposed, expanded view.
    """
    axes = validate_axes(axes, image.ndim)
    order = [axes.index(a) for a in CANONICAL if a in axes]
    view = np.transpose(image, order) if order != list(range(image.ndim)) else image
    present = [a for a in CANONICAL if a in axes]
    index = tuple(slice(None) if a in present else np.newaxis for a in CANONICAL)
    return view[index]


def from_canonical(canon: np.ndarray, axes: str) -> np.ndarray:
    """Invert :func:`to_canonical`: drop added axes and restore the order of ``axes``."""
    axes = validate_axes(axes)
    drop = tuple(i for i, a in enumerate(CANONICAL) if a not in axes)
    arr = canon.reshape([s for i, s in enumerate(canon.shape) if i not in drop])
    present = [a for a in CANONICAL if a in axes]
    return np.transpose(arr, [present.index(a) for a in axes])


def spatial_ndim(axes: str) -> int:
    """Number of spatial dimensions trained over: 3 with Z, else 2."""
    return 3 if "Z" in axes.upper() else 2


def canonical_index(axes: str, index: dict[str, object]) -> tuple[object, ...]:
    """Build an index tuple in the order of ``axes`` from per-letter slices/ints."""
    return tuple(index.get(a, slice(None)) for a in axes.upper())
