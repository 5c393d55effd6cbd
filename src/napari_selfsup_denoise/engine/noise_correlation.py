"""How strongly the noise of an image is correlated between neighbouring pixels, measured before training.

Self-supervised denoisers (N2V, the blind-spot network) hide one pixel from the network and ask it to
predict that pixel from its neighbours. That only works when the noise is independent between pixels:
noise correlated along an axis (camera read-out, line scanning, a resampled image) leaks through the
neighbours, and the network learns to reproduce it. This module estimates, per spatial axis, the lag-1
correlation of the noise while cancelling the image's structure:

* a time-lapse (a ``T`` axis of at least two frames): the difference of consecutive frames, where a
  static scene cancels and the noise of two independent frames remains, with the same spatial
  correlation as the noise;
* a single image or stack: the lag-1 correlation along axis ``A`` of the image differenced along another
  axis ``B``. For noise independent between pixels it is 0 whatever the image (the two differences share
  no pixel); for noise correlated along ``A`` only it equals the noise's own lag-1 correlation along ``A``.
  Image structure biases it upwards, so it is pooled over the flattest blocks only.

Both keep the blocks whose differences vary least (edges and moving objects are left out). Nothing is
read beyond a few planes, so a stack larger than memory costs a few reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Lag-1 correlation above which a 1-pixel blind spot is the wrong tool along an axis (``auto`` then trains
# structN2V, an explicit choice is warned). Independent noise reads -0.01-0.02 on the development cases; the real
# telomere time-lapse 0.47 along Y. camera_g25 with its noise filtered along Y, 175 steps (1 thread, seed 0):
# lag-1 0.19: blind-spot 27.87 dB, structN2V 25.94; 0.33: 24.04 vs 26.26; 0.49: 21.03-21.20 vs 25.59-26.02 (seeds 0-1).
CORRELATED_AT = 0.25
# Above this the noise is measurably correlated, and the classical noise estimate is corrected (laplacian_share).
MEASURABLE_AT = 0.15
MAX_PLANES = 8  # planes (or frame pairs) read, evenly spaced over the stack
MAX_EDGE = 1024  # central crop of each plane (Y, X)
MAX_Z = 32  # ... and of a stack (Z)
BLOCK = 16  # block edge in Y and X (Z: up to 8 planes)
KEEP = 0.25  # share of the blocks kept: the flattest ones


@dataclass(frozen=True)
class NoiseCorrelation:
    """The noise's lag-1 correlation per spatial axis, and whether it is too strong for a 1-pixel blind spot.

    Attributes
    ----------
    lag1 : dict of str to float
        Lag-1 correlation of the noise along each spatial axis (``Z``, ``Y``, ``X``): 0 for noise
        independent between pixels, up to 1.
    method : str
        ``frame differences`` (a time-lapse) or ``differences across axes`` (a single image or stack).
    pixels : int
        Pixels the figures were pooled over.
    threshold : float
        The figure above which an axis counts as correlated.
    """

    lag1: dict[str, float] = field(default_factory=dict)
    method: str = ""
    pixels: int = 0
    threshold: float = CORRELATED_AT

    @property
    def axis(self) -> str | None:
        """The most correlated axis when its figure is above ``threshold``, else None."""
        if not self.lag1:
            return None
        ax = max(self.lag1, key=lambda a: self.lag1[a])
        return ax if self.lag1[ax] > self.threshold else None

    @property
    def correlated(self) -> bool:
        """Whether the noise is correlated along some axis (above ``threshold``)."""
        return self.axis is not None

    def figures(self) -> str:
        """The per-axis figures, e.g. ``Y 0.48, X 0.17``."""
        return ", ".join(f"{a} {v:.2f}" for a, v in self.lag1.items())

    def reason(self) -> str:
        """One plain clause: what was measured and what it means."""
        if self.axis is None and max(self.lag1.values(), default=0.0) > MEASURABLE_AT:
            return (f"the noise is weakly correlated (lag-1 correlation {self.figures()}, at most "
                    f"{self.threshold:.2f}; {self.method}): there a 1-pixel blind spot still did better than "
                    "structN2V")  # fmt: skip
        if self.axis is None:
            return f"the noise looks independent between pixels (lag-1 correlation {self.figures()}; {self.method})"
        return (f"the noise is correlated along {self.axis} (lag-1 correlation {self.figures()}, above "
                f"{self.threshold:.2f}; {self.method}): a 1-pixel blind spot would learn it")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form. A model's summary keeps only the choice's text (``algorithm_choice``, with the figures)."""
        return {"lag1": {a: round(v, 4) for a, v in self.lag1.items()}, "method": self.method,
                "pixels": self.pixels, "threshold": self.threshold, "axis": self.axis}  # fmt: skip


def _starts(n: int, k: int) -> list[int]:
    """Up to ``k`` indices spread evenly over ``range(n)``."""
    return sorted({int(i) for i in np.linspace(0, n - 1, min(n, k))})


def _window(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Canonical ``C, Z, Y, X`` slices of the central part read: up to :data:`MAX_Z` planes and a
    :data:`MAX_EDGE` square."""
    limits = (shape[2], MAX_Z, MAX_EDGE, MAX_EDGE)
    return tuple(slice(max(0, (n - k) // 2), max(0, (n - k) // 2) + k) for n, k in zip(shape[2:], limits))


def _fields(canon: Any) -> tuple[list[np.ndarray], bool]:
    """Noise-carrying fields (Z, Y, X, float64) to measure on, and whether they are frame differences."""
    s_n, t_n = int(canon.shape[0]), int(canon.shape[1])
    win = _window(tuple(int(v) for v in canon.shape))
    out: list[np.ndarray] = []
    if t_n >= 2:
        for t in _starts(t_n - 1, MAX_PLANES):
            pair = np.asarray(canon[(0, slice(t, t + 2), *win)], dtype=np.float64)  # (2, C, Z, Y, X)
            out += list(pair[1] - pair[0])
        return out, True
    for s in _starts(s_n, MAX_PLANES):
        out += list(np.asarray(canon[(s, 0, *win)], dtype=np.float64))
    return out, False


def _block_sums(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per block of ``u`` and ``v`` (same shape, Z, Y, X): count, sums, sums of squares and of products."""
    edges = [min(n, 8) for n in u.shape[:-2]] + [min(n, BLOCK) for n in u.shape[-2:]]
    counts = [n // e for n, e in zip(u.shape, edges)]
    cut = tuple(slice(0, c * e) for c, e in zip(counts, edges))
    shape = [x for c, e in zip(counts, edges) for x in (c, e)]
    inner = tuple(range(1, 2 * u.ndim, 2))
    uu, vv = u[cut].reshape(shape), v[cut].reshape(shape)
    sums = [np.sum(t, axis=inner).ravel() for t in (uu, vv, uu * uu, vv * vv, uu * vv)]
    return np.stack([np.full_like(sums[0], float(np.prod(edges))), *sums])


def _lag1(fields: list[np.ndarray], axis: int, across: int | None) -> tuple[float, int]:
    """The lag-1 less the lag-2 correlation along ``axis`` (:func:`_lagged`), and the pixels it used.

    Structure that survives the differencing is smooth, so it correlates at lag 2 about as much as at lag 1
    and cancels; noise correlated between neighbours (lag 1) does not (the telomere time-lapse: lag 2 is
    -0.01 to 0.01). Smooth white-noise test stacks read 0.15 at lag 1 and at most 0.04 so.
    """
    c1, n = _lagged(fields, axis, across, 1)
    return c1 - _lagged(fields, axis, across, 2)[0], n


def _lagged(fields: list[np.ndarray], axis: int, across: int | None, lag: int) -> tuple[float, int]:
    """Pooled correlation at ``lag`` along ``axis`` over the flattest blocks (of the fields differenced along
    ``across`` first, when given), and the pixels it used."""
    blocks = []
    for f in fields:
        d = np.diff(f, axis=across) if across is not None else f
        if d.shape[axis] < 2 + lag or min(d.shape[-2:]) < 2:
            continue
        lo = [slice(None)] * d.ndim
        hi = [slice(None)] * d.ndim
        lo[axis], hi[axis] = slice(0, -lag), slice(lag, None)
        blocks.append(_block_sums(d[tuple(lo)], d[tuple(hi)]))
    if not blocks:
        return float("nan"), 0
    n, su, sv, suu, svv, suv = np.concatenate(blocks, axis=1)
    var_u, var_v = suu - su * su / n, svv - sv * sv / n
    ok = (var_u > 1e-12 * np.maximum(suu, 1e-300)) & (var_v > 0)
    if not ok.any():
        return float("nan"), 0
    keep = ok & (var_u / n <= np.quantile((var_u / n)[ok], KEEP))
    cov = float(np.sum(suv[keep] - su[keep] * sv[keep] / n[keep]))
    return cov / float(np.sqrt(np.sum(var_u[keep]) * np.sum(var_v[keep]))), int(np.sum(n[keep]))


def measure_noise_correlation(canon: Any) -> NoiseCorrelation:
    """Estimate the noise's lag-1 correlation along each spatial axis of a canonical array.

    Parameters
    ----------
    canon : array-like
        The image in canonical order ``S, T, C, Z, Y, X`` (:func:`.arrays.canonical`); a ``Z`` of 1
        means 2D. At most :data:`MAX_PLANES` planes (or frame pairs) are read.

    Returns
    -------
    NoiseCorrelation
        The figures per axis (``Z`` only for stacks), and the axis they call correlated, if any.
    """
    fields, frames = _fields(canon)
    axes = ("Z", "Y", "X") if int(canon.shape[3]) > 1 else ("Y", "X")
    first = 3 - len(axes)
    lag1, pixels = {}, 0
    for i, a in enumerate(axes):
        ax = first + i
        across = None if frames else (2 if a != "X" else 1)  # Z and Y: differences along X; X: along Y
        value, n = _lag1(fields, ax, across)
        lag1[a], pixels = (0.0 if np.isnan(value) else value), max(pixels, n)
    method = "frame differences" if frames else "differences across axes"
    return NoiseCorrelation(lag1, method, pixels)


def measure_planes(planes: list[np.ndarray]) -> NoiseCorrelation:
    """:func:`measure_noise_correlation` of single 2D planes ``(Y, X)`` (differences across axes)."""
    fields = [np.asarray(p, dtype=np.float64)[None] for p in planes]
    (cy, ny), (cx, nx) = _lag1(fields, 1, 2), _lag1(fields, 2, 1)
    lag1 = {"Y": 0.0 if np.isnan(cy) else cy, "X": 0.0 if np.isnan(cx) else cx}
    return NoiseCorrelation(lag1, "differences across axes", max(ny, nx))


def laplacian_share(corr: NoiseCorrelation) -> float:
    """The share of the noise's variance that a 4-neighbour Laplacian estimate sees, given ``corr``.

    ``4 c - (up + down + left + right)`` over ``sqrt(20)`` has the noise's variance for independent
    noise; noise correlated ``cy`` along Y and ``cx`` along X (lag 1, separable) makes it
    ``1 - 0.8 (cy + cx) + 0.4 cy cx`` times that. 1 unless a figure is above :data:`MEASURABLE_AT` (so an
    estimate on independent noise is never changed); at least 0.2.
    """
    if max(corr.lag1.values(), default=0.0) <= MEASURABLE_AT:
        return 1.0
    cy, cx = max(corr.lag1.get("Y", 0.0), 0.0), max(corr.lag1.get("X", 0.0), 0.0)
    return max(0.2, 1.0 - 0.8 * (cy + cx) + 0.4 * cy * cx)
