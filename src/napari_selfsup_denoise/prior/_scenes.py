"""Clean synthetic scenes in 2D and 3D, intensities roughly in ``[0, 1]`` (float32, no noise).

Each scene function takes a ``numpy.random.Generator`` and a shape and draws
everything from that generator: the same seed gives the same image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._fields import Shape, blur, curve, ellipsoid, power_field, power_law, random_rotation, splat

_MAX_LEAVES = 6000


def _radii(rng: np.random.Generator, r: float, ndim: int, elong: float) -> np.ndarray:
    """Radii of an ellipsoid of mean radius ``r``, axes up to ``elong`` times apart."""
    return r * np.exp(rng.uniform(-0.5, 0.5, ndim) * np.log(elong))


def dead_leaves(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Occluding ellipses / ellipsoids with power-law sizes and random, partly textured intensities.

    Drawn front to back: each new leaf fills only what the leaves in front of it left uncovered.
    """
    ndim, size = len(shape), float(min(shape))
    rmin, rmax = rng.uniform(1.5, 4.0), size * rng.uniform(0.15, 0.6)
    alpha = rng.uniform(2.5, 3.5) if ndim == 2 else rng.uniform(3.5, 4.5)
    out = np.zeros(shape, np.float32)
    free = np.ones(shape, np.float32)  # share of each pixel still visible through the leaves drawn so far
    shade = power_field(rng, shape, 2.5) * rng.uniform(0.0, 0.15)
    for i in range(_MAX_LEAVES):
        r = float(power_law(rng, rmin, rmax, alpha)[0])
        box, cover = ellipsoid(
            shape, rng.random(ndim) * np.asarray(shape), _radii(rng, r, ndim, 3.0), random_rotation(rng, ndim), 0.5
        )
        if cover.size == 0:
            continue
        value = rng.random() ** rng.uniform(0.5, 2.0)
        take = free[box] * cover
        out[box] += take * (value + shade[box] * (rng.random() < 0.3))
        free[box] -= take
        if i % 64 == 63 and free.mean() < 0.01:
            break
    out += free * rng.random()
    return np.clip(blur(out, rng.uniform(0.0, 1.2)), 0.0, None)


def _spot(rng: np.random.Generator, box: tuple[slice, ...], centre: np.ndarray, r: float) -> np.ndarray:
    """Coverage of a small ellipsoid near ``centre`` on the grid of ``box``."""
    ndim = len(box)
    local = tuple(s.stop - s.start for s in box)
    at = centre - np.array([s.start for s in box]) + rng.normal(0, r / 3, ndim)
    radii = _radii(rng, r * rng.uniform(0.15, 0.35), ndim, 1.5)
    sub, cover = ellipsoid(local, at, radii, random_rotation(rng, ndim), 1)
    out = np.zeros(local, np.float32)
    if cover.size:
        out[sub] = cover
    return out


def nuclei(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Soft-edged blobs of many sizes and brightnesses, some with chromatin texture and nucleoli."""
    ndim, size = len(shape), float(min(shape))
    out = np.zeros(shape, np.float32)
    r_lo, r_hi = sorted(rng.uniform(2.0, max(3.0, size / 5), 2))
    count = int(rng.uniform(0.2, 1.0) * np.prod(shape) / ((r_lo + r_hi) / 2) ** ndim / 2**ndim) + 1
    grain = power_field(rng, shape, rng.uniform(0.5, 2.5))
    for _ in range(min(count, 400)):
        r = rng.uniform(r_lo, r_hi)
        centre = rng.random(ndim) * np.asarray(shape)
        box, cover = ellipsoid(
            shape, centre, _radii(rng, r, ndim, 1.8), random_rotation(rng, ndim), rng.uniform(0.5, 0.3 * r + 0.6)
        )
        if cover.size == 0:
            continue
        bright = float(np.exp(rng.normal(0.0, 0.6)))
        inside = bright * (1.0 + rng.uniform(0.0, 0.5) * grain[box])
        if rng.random() < 0.3:  # a nucleolus: a darker or brighter inner spot
            inside = inside * (1.0 + rng.uniform(-0.6, 0.8) * _spot(rng, box, centre, r))
        add = cover * np.clip(inside, 0.0, None)
        out[box] = np.maximum(out[box], add) if rng.random() < 0.5 else out[box] + add
    return out / max(float(np.percentile(out, 99.5)), 1e-6)


def filaments(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Smooth thin curves (microtubule / actin-like), blurred by a PSF of 0.6-2 pixels."""
    size = float(min(shape))
    out = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(3, 40))):
        pts = curve(rng, shape, size * rng.uniform(0.3, 2.0), size * rng.uniform(0.05, 1.0))
        out += splat(shape, pts, 0.5 * float(np.exp(rng.normal(0.0, 0.5))))
    out = blur(out, rng.uniform(0.6, 2.0))
    return out / max(float(np.percentile(out, 99.9)), 1e-6)


def membranes(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Cell outlines: the borders of a warped Voronoi tessellation, of random thickness."""
    ndim = len(shape)
    n = int(rng.integers(4, 60))
    seeds = rng.random((n, ndim)) * np.asarray(shape)
    grids = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    warp = rng.uniform(0.0, 0.04) * float(min(shape))
    coords = [g + warp * power_field(rng, shape, 3.5) for g in grids]
    d = np.stack([np.sqrt(sum((c - s[k]) ** 2 for k, c in enumerate(coords))) for s in seeds])
    cell = np.argmin(d, axis=0)
    d.sort(axis=0)
    gap = d[1] - d[0]
    width = rng.uniform(0.5, 2.5)
    out = np.exp(-0.5 * (gap / width) ** 2) * (1.0 + rng.uniform(0.0, 0.6) * power_field(rng, shape, 2.0))
    if rng.random() < 0.5:  # dim cytoplasm of a different brightness in each cell
        out = out + rng.uniform(0.02, 0.3) * rng.random(n)[cell]
    return blur(np.clip(out, 0.0, None).astype(np.float32), rng.uniform(0.3, 1.2))


def puncta(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Sparse diffraction-limited spots of varied brightness (Gaussian, sigma 0.7-2.5 pixels)."""
    n = int(rng.uniform(0.0005, 0.01) * np.prod(shape) ** (2 / len(shape))) + 1
    pts = rng.random((n, len(shape))) * np.asarray(shape)
    sigma = rng.uniform(0.7, 2.5)
    out = blur(splat(shape, pts, np.exp(rng.normal(0.0, 0.7, n))), sigma)
    return out / max(float(out.max()), 1e-6)


def texture(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """Textured background: a power-law random field, linear, log-normal or thresholded (tissue-like)."""
    field = power_field(rng, shape, rng.uniform(1.0, 4.0))
    mode = int(rng.integers(3))
    if mode == 0:
        out = field - field.min()
    elif mode == 1:
        out = np.exp(rng.uniform(0.3, 1.2) * field)
    else:
        out = 1.0 / (1.0 + np.exp(-field / rng.uniform(0.05, 0.4)))
    return (out / max(float(out.max()), 1e-6)).astype(np.float32)


def mixed(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    """A microscopy-like field: a textured background under a random weighted mix of the object scenes."""
    out = rng.uniform(0.0, 0.3) * texture(rng, shape)
    parts = [nuclei, filaments, membranes, puncta]
    picks = rng.random(len(parts)) < 0.5
    picks[int(rng.integers(len(parts)))] = True
    for part, pick in zip(parts, picks):
        if pick:
            out = out + float(np.exp(rng.normal(0.0, 0.5))) * part(rng, shape)
    return out.astype(np.float32)


SceneFn = Callable[[np.random.Generator, Shape], np.ndarray]
SCENES: dict[str, SceneFn] = {
    "dead_leaves": dead_leaves,
    "nuclei": nuclei,
    "filaments": filaments,
    "membranes": membranes,
    "puncta": puncta,
    "texture": texture,
    "mixed": mixed,
}
