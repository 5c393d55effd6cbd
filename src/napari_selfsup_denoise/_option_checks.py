"""Checks of single configuration values, and the error they raise (used by :mod:`.config`)."""

from __future__ import annotations

import dataclasses
from typing import Any


class ConfigError(ValueError):
    """A configuration value is out of range or unknown."""


def check(cond: bool, msg: str) -> None:
    """Raise :class:`ConfigError` with ``msg`` unless ``cond``."""
    if not cond:
        raise ConfigError(msg)


def check_noise_model(spec: str) -> str:
    """Validate a noise-model spec: ``auto``, ``gaussian``, ``poisson-gaussian`` or ``known:SIGMA``."""
    s = spec.strip().lower()
    if s in ("auto", "gaussian", "poisson-gaussian"):
        return s
    if s.startswith("known:"):
        try:
            sigma = float(s.split(":", 1)[1])
        except ValueError:
            sigma = -1.0
        check(sigma > 0, f"noise model {spec!r}: SIGMA in 'known:SIGMA' must be a positive number")
        return s
    raise ConfigError(
        f"unknown noise model {spec!r}; use auto, gaussian, poisson-gaussian or known:SIGMA "
        "(SIGMA in the image's intensity units)"
    )


START_NAMES = ("builtin", "random")


def check_start(spec: str) -> str:
    """Validate ``start_from``: ``builtin``, ``random`` or the path of a model file (not checked here)."""
    s = str(spec).strip()
    if s.lower() in START_NAMES:
        return s.lower()
    check(s != "", "start_from must be builtin, random or the path of a model file (.sdmodel)")
    return s


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,)}


def check_types(cls: type, d: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the option whose value has the wrong type (``depth="abc"``)."""
    for f in (f for f in dataclasses.fields(cls) if f.name in d):
        v, kinds = d[f.name], [k.strip() for k in str(f.type).split("|")]
        allowed = tuple(t for k in kinds for t in _TYPES.get(k, ()))
        if not allowed or (v is None and "None" in kinds):
            continue
        if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed):
            raise ConfigError(f"{f.name} must be {' or '.join(kinds)}, got {v!r}")
