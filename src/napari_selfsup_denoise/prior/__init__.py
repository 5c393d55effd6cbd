"""The built-in prior: a blind-spot network pre-trained on generated images, shipped with the package.

It gives a denoised image without training (:func:`zero_shot_model`, the API's
``denoise(image)``) and is where training starts by default
(``TrainConfig.start_from="builtin"``; :func:`resolve_start`). The weights are in
``prior/weights/`` (read with :func:`load_prior`); the package works without them.

Layers: this package uses the engine and the config; the engine never imports it
(callers resolve the prior to weights and pass them in).
"""

from __future__ import annotations

from .builtin import Prior, PriorUnavailable, available, load_prior, prior_file, prior_name, weights_folder
from .start import resolve_start
from .zero_shot import zero_shot_model

__all__ = [
    "Prior",
    "PriorUnavailable",
    "available",
    "load_prior",
    "prior_file",
    "prior_name",
    "resolve_start",
    "weights_folder",
    "zero_shot_model",
]
