"""Zero-shot denoising: the shipped prior, frozen, with a noise model fitted to the image at hand.

No training runs: the image is normalised as training would normalise it, the
noise model is fitted classically (the local variance-vs-mean estimate of
:mod:`..engine.noise`), and the prior's network is used as it was shipped.
The result is the posterior mean through the one prediction path
(:meth:`..engine.model.Model.denoise`, with its self-check).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..axes import guess_axes, spatial_ndim, validate_axes
from ..engine.arrays import canonical
from ..engine.data import DataError, check_finite, fit_normalisation
from ..engine.methods import get_method
from ..engine.model import Model
from .builtin import Prior, PriorUnavailable, load_prior

MIN_EDGE = 16


def _noise_at_estimate(net: Any) -> None:
    """Set a learned noise model to its classical estimate (training starts it higher, on purpose)."""
    noise = net.noise
    if noise.kind == "known":
        return
    a_n, b_n = noise.classical.clone()
    noise.initialise(a_n, b_n, noise.offset.clone(), noise.scale.clone())


def _check_image(image: Any, axes: str, prior: Prior) -> Any:
    canon = canonical(image, axes)
    if int(np.prod(canon.shape)) == 0:
        raise DataError(f"the image is empty (shape {tuple(image.shape)})")
    if min(canon.shape[4:]) < MIN_EDGE:
        raise DataError(f"the image's Y, X extent {tuple(canon.shape[4:])} is too small: zero-shot denoising needs "
                        f"at least {MIN_EDGE} x {MIN_EDGE} pixels")  # fmt: skip
    if canon.shape[2] != prior.channels:
        raise DataError(f"the built-in prior denoises {prior.channels}-channel images and this one has "
                        f"{canon.shape[2]} channels (axes {axes}); denoise the channels one at a time (pass each "
                        "as its own image) or train a model on it")  # fmt: skip
    check_finite(canon)
    return canon


def zero_shot_model(image: Any, axes: str | None = None, *, noise_model: str = "auto") -> Model:
    """A :class:`Model` for ``image``: the built-in prior with a noise model fitted to this image.

    Parameters
    ----------
    image : array-like
        The noisy image (numpy, zarr or dask); only statistics and a few crops are read.
    axes : str, optional
        Its axes (letters of ``STCZYX``); guessed from the shape when omitted. ``Z`` picks the 3D prior.
    noise_model : str
        ``auto`` (Gaussian or Poisson-Gaussian, from the image), ``gaussian``, ``poisson-gaussian``
        or ``known:SIGMA`` (SIGMA in the image's intensity units).

    Raises
    ------
    PriorUnavailable
        When the built-in prior for the image's dimensionality is not installed.
    DataError
        For an empty, tiny, non-finite or multi-channel image.
    """
    axes = validate_axes(axes or guess_axes(tuple(image.shape)), len(image.shape))
    ndim = spatial_ndim(axes)
    try:
        prior = load_prior("blindspot", ndim)
    except PriorUnavailable as exc:
        planes = " (or give the Z axis as T to denoise plane by plane)" if ndim == 3 else ""
        raise PriorUnavailable(f"zero-shot denoising needs the built-in prior: {exc}; train a model instead "
                               f"(selfsup-denoise run / train){planes}") from exc  # fmt: skip
    canon = _check_image(image, axes, prior)
    cfg = prior.config.replace(axes=axes, noise_model=noise_model)
    from ..config import resolve_defaults

    cfg = resolve_defaults(cfg, ndim)
    norm = fit_normalisation(canon, cfg.normalisation, cfg.percentiles)
    method = get_method(cfg)
    net = method.build(ndim, prior.channels)
    prior.weights.load_into(net)
    method.prepare(net, canon, norm)
    _noise_at_estimate(net)
    net.eval()
    if ndim == 2:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    source = {**prior.weights.source, "zero_shot": True}
    summary = {"steps": 0, "ended_by": "zero-shot", "start": source, **method.state(net, norm.scale)}
    return Model(net, cfg, axes, ndim, prior.channels, norm, summary, method)
