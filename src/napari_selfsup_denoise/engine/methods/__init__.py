"""Algorithms as small objects: build the network, compute the loss, run inference.

The training loop and tiled prediction know nothing of N2V or blind spots;
they call a :class:`Method`. New algorithms register in :func:`get_method`.
"""

from __future__ import annotations

from ...config import ResolvedConfig
from .base import Method
from .n2v import N2VMethod

__all__ = ["Method", "N2VMethod", "get_method"]


def get_method(cfg: ResolvedConfig) -> Method:
    """The :class:`Method` for ``cfg.algorithm``; ``cfg`` must be resolved (``config.resolve_defaults``)."""
    if not isinstance(cfg, ResolvedConfig):
        raise ValueError("get_method needs a config with every default filled in: call config.resolve_defaults first")
    if cfg.algorithm == "blindspot":
        from .blindspot import BlindSpotMethod

        return BlindSpotMethod(cfg)
    return N2VMethod(cfg)
