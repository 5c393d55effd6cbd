"""Algorithms as small objects: build the network, compute the loss, run inference.

The training loop and tiled prediction know nothing of N2V or blind spots;
they call a :class:`Method`. New algorithms register in :func:`get_method`.
"""

from __future__ import annotations

from ...config import TrainConfig
from .base import Method
from .n2v import N2VMethod

__all__ = ["Method", "N2VMethod", "get_method"]


def get_method(cfg: TrainConfig) -> Method:
    """The :class:`Method` for ``cfg.algorithm``."""
    if cfg.algorithm == "blindspot":
        from .blindspot import BlindSpotMethod

        return BlindSpotMethod(cfg)
    return N2VMethod(cfg)
