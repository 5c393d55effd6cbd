"""A pool of generated training images, normalised as the engine normalises a user's image.

Pre-training draws its batches from a pool of :mod:`.synth` images and
replaces a few of them every step, so generation costs a fraction of a
training step and the network still sees a stream of fresh images. Each image
is normalised with :func:`..engine.data.fit_normalisation` computed on its
*noisy* version, exactly as the engine does at inference; the clean image and
the noise variance are mapped with the same normalisation.
"""

from __future__ import annotations

import numpy as np
import torch

from ..engine.arrays import canonical
from ..engine.data import dihedral, fit_normalisation
from ._fields import Shape
from .synth import generate

_AXES = {2: "YX", 3: "ZYX"}


class SynthPool:
    """Normalised (noisy, clean, noise variance) triples of generated images, refreshed a few at a time.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every image and every crop (seeded by the caller).
    size : int
        Images held at once.
    shape : tuple of int
        Shape of each generated image, ``(Y, X)`` or ``(Z, Y, X)``.
    normalisation : str
        The engine's normalisation method (``TrainConfig.normalisation``).
    """

    def __init__(self, rng: np.random.Generator, size: int, shape: Shape, normalisation: str = "meanstd") -> None:
        if size < 1:
            raise ValueError(f"the pool needs at least one image, got size={size}")
        self.rng, self.shape, self.method = rng, tuple(shape), normalisation
        self.images: list[np.ndarray] = []
        self.generated = 0
        self.kinds: dict[str, int] = {}
        for _ in range(size):
            self.images.append(self._make())

    def _make(self) -> np.ndarray:
        """One generated image as a ``(3, *shape)`` stack: normalised noisy, clean and noise variance."""
        sample = generate(self.rng, self.shape)
        canon = canonical(sample.noisy, _AXES[len(self.shape)])
        norm = fit_normalisation(canon, self.method)
        noisy = norm.forward(sample.noisy[None], channel_axis=0)[0]
        clean = norm.forward(sample.clean[None], channel_axis=0)[0]
        var_n = sample.noise.variance(sample.clean) / norm.scale[0] ** 2
        self.generated += 1
        self.kinds[sample.kind] = self.kinds.get(sample.kind, 0) + 1
        return np.stack([noisy, clean, var_n.astype(np.float32)])

    def refresh(self, count: int) -> None:
        """Replace ``count`` randomly chosen images with fresh ones."""
        for _ in range(count):
            self.images[int(self.rng.integers(len(self.images)))] = self._make()

    def batch(self, size: int, edge: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random crops of edge ``edge`` (every spatial axis, clipped to the image), randomly rotated and mirrored.

        Returns
        -------
        (torch.Tensor, torch.Tensor, torch.Tensor)
            Noisy input, clean target and noise variance, each ``(size, 1, *crop)``, normalised units.
        """
        crops = []
        for _ in range(size):
            img = self.images[int(self.rng.integers(len(self.images)))]
            box = [slice(None)]
            for n in img.shape[1:]:
                e = min(edge, n)
                start = int(self.rng.integers(n - e + 1))
                box.append(slice(start, start + e))
            crop = img[tuple(box)]
            crop = dihedral(crop, int(self.rng.integers(4)), bool(self.rng.integers(2)))
            crops.append(np.ascontiguousarray(crop))
        stack = torch.from_numpy(np.stack(crops))  # (B, 3, *crop)
        return stack[:, 0:1], stack[:, 1:2], stack[:, 2:3]
