"""Numpy building blocks of the synthetic scenes: blurs, random fields, soft ellipsoids, curves.

Every function works in 2D and 3D (any ``shape``), draws its randomness from
the ``numpy.random.Generator`` it is given, and reads no file.
"""

from __future__ import annotations

import numpy as np

Shape = tuple[int, ...]


def _freq2(shape: Shape) -> np.ndarray:
    """Squared spatial frequency (cycles per pixel) on the grid of ``numpy.fft.rfftn`` of ``shape``."""
    axes = [np.fft.fftfreq(n) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1])]
    grids = np.meshgrid(*axes, indexing="ij", sparse=True)
    return sum(g**2 for g in grids)  # type: ignore[return-value]


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of standard deviation ``sigma`` pixels (mirrored borders), float32."""
    if sigma <= 0.05:
        return x.astype(np.float32, copy=True)
    pad = min(int(np.ceil(3 * sigma)), *(n - 1 for n in x.shape))
    xp = np.pad(x, pad, mode="reflect") if pad > 0 else x
    gain = np.exp(-2.0 * np.pi**2 * sigma**2 * _freq2(xp.shape))
    out = np.fft.irfftn(np.fft.rfftn(xp) * gain, s=xp.shape, axes=tuple(range(xp.ndim)))
    crop = tuple(slice(pad, pad + n) for n in x.shape)
    return out[crop].astype(np.float32)


def power_field(rng: np.random.Generator, shape: Shape, beta: float, low_cut: float = 0.0) -> np.ndarray:
    """Gaussian random field with power spectrum ``1 / f**beta``, zero mean, unit variance (periodic).

    ``low_cut`` (cycles per pixel) removes the frequencies below it, for textures without large-scale drift.
    """
    f2 = _freq2(shape)
    f2.flat[0] = 1.0
    amp = f2 ** (-beta / 4.0)
    amp.flat[0] = 0.0
    if low_cut > 0:
        amp = amp * (f2 >= low_cut**2)
    spec = np.fft.rfftn(rng.standard_normal(shape)) * amp
    out = np.fft.irfftn(spec, s=shape, axes=tuple(range(len(shape))))
    sd = float(out.std())
    return (out / sd if sd > 0 else out).astype(np.float32)


def random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """A uniformly random rotation matrix ``(ndim, ndim)``."""
    if ndim == 2:
        t = rng.uniform(0.0, 2.0 * np.pi)
        return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def ellipsoid(
    shape: Shape, centre: np.ndarray, radii: np.ndarray, rot: np.ndarray, edge: float
) -> tuple[tuple[slice, ...], np.ndarray]:
    """Soft ellipsoid: its bounding box in ``shape`` and its coverage (0..1) there.

    ``rot`` turns the ellipsoid's axes (columns) into the grid's; ``edge`` is the
    width of the soft border in pixels (about 0.5 gives an anti-aliased hard
    edge). The box is empty when the ellipsoid lies outside ``shape``.
    """
    reach = float(np.max(radii)) + 2 * edge + 1
    box = tuple(
        slice(max(0, int(np.floor(c - reach))), min(n, int(np.ceil(c + reach)) + 1)) for c, n in zip(centre, shape)
    )
    if any(s.start >= s.stop for s in box):
        return box, np.zeros([0] * len(shape), np.float32)
    ndim = len(shape)
    axes = [
        (np.arange(s.start, s.stop, dtype=np.float32) - c).reshape([-1 if j == i else 1 for j in range(ndim)])
        for i, (s, c) in enumerate(zip(box, centre))
    ]
    d2 = 0.0
    for k in range(ndim):  # coordinate along the ellipsoid's axis k, by broadcasting (no full grids)
        q = sum(ax * np.float32(rot[i, k] / radii[k]) for i, ax in enumerate(axes))
        d2 = d2 + q * q
    d = np.sqrt(d2)
    cover = np.clip(0.5 + (1.0 - d) * np.float32(np.min(radii) / max(edge, 1e-3)), 0.0, 1.0)
    return box, cover.astype(np.float32, copy=False)


def power_law(rng: np.random.Generator, low: float, high: float, alpha: float, n: int | None = None) -> np.ndarray:
    """Samples with density ``~ r**-alpha`` on ``[low, high]`` (``alpha != 1``)."""
    u = rng.random(n if n is not None else 1)
    e = 1.0 - alpha
    return (low**e + u * (high**e - low**e)) ** (1.0 / e)


def curve(rng: np.random.Generator, shape: Shape, length: float, persistence: float) -> np.ndarray:
    """Points ``(n, ndim)`` of a smooth random curve, two per pixel of its ``length``.

    The direction is a smoothed random vector whose correlation length along
    the curve is ``persistence`` pixels: large values give straight filaments,
    small ones wiggly curves. A drift along a random axis keeps long curves going.
    """
    ndim = len(shape)
    n = max(4, int(2 * length))
    sigma = max(1.0, 2.0 * persistence / 2.0)  # in points (two per pixel)
    half = int(min(3 * sigma, n))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))  # unit variance after smoothing
    white = rng.standard_normal((n + 2 * half, ndim))
    comps = np.stack([np.convolve(white[:, k], kernel, mode="valid") for k in range(ndim)], axis=1)[:n]
    drift = rng.standard_normal(ndim)
    comps = comps + drift / np.linalg.norm(drift) * rng.uniform(0.0, 1.5)
    steps = comps / np.maximum(np.linalg.norm(comps, axis=1, keepdims=True), 1e-6)
    start = rng.random(ndim) * np.asarray(shape)
    return start + 0.5 * np.cumsum(steps, axis=0)


def splat(shape: Shape, pts: np.ndarray, weights: np.ndarray | float = 1.0) -> np.ndarray:
    """Add ``weights`` at the points (linear interpolation onto the grid); points outside are dropped."""
    out = np.zeros(int(np.prod(shape)), np.float64)
    base = np.floor(pts).astype(np.int64)
    frac = pts - base
    w = np.broadcast_to(np.asarray(weights, np.float64), (len(pts),))
    ndim = len(shape)
    for corner in range(2**ndim):
        offs = np.array([(corner >> k) & 1 for k in range(ndim)])
        idx = base + offs
        cw = w * np.prod(np.where(offs, frac, 1.0 - frac), axis=1)
        ok = np.all((idx >= 0) & (idx < np.asarray(shape)), axis=1)
        flat = np.ravel_multi_index(tuple(idx[ok].T), shape)
        out += np.bincount(flat, weights=cw[ok], minlength=out.size)
    return out.reshape(shape).astype(np.float32)


def illumination(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Multiplicative illumination: a linear gradient times radial vignetting, mean about 1."""
    grids = np.meshgrid(*(np.linspace(-1.0, 1.0, n) for n in shape), indexing="ij", sparse=True)
    slope = rng.normal(0.0, 0.25, len(shape))
    field = 1.0 + sum(s * g for s, g in zip(slope, grids))
    r2 = sum((g - rng.uniform(-0.3, 0.3)) ** 2 for g in grids) / len(shape)
    field = field * (1.0 - rng.uniform(0.0, 0.6) * r2)
    return np.clip(field, 0.15, None).astype(np.float32)
