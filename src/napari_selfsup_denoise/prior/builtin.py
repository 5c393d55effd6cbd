"""Find the shipped prior in the installed package and load it through the no-pickle model file.

The weights live in ``napari_selfsup_denoise/prior/weights/`` as ordinary ``.sdmodel``
files (safetensors + JSON, :mod:`..engine.model_file`), one per algorithm and
dimensionality (``blindspot_2d.sdmodel``). The package works without them: every
caller gets a plain sentence saying so, and training starts from random weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from ..config import ConfigError, ResolvedConfig, from_dict, resolve_defaults
from ..engine.model_file import ModelFileError, read_metadata, read_weights
from ..engine.start import InitialWeights, network_state

WEIGHTS_FOLDER = "weights"
# (algorithm, spatial dimensions) that have a prior; the file is f"{algorithm}_{ndim}d.sdmodel"
PRIORS = (("blindspot", 2), ("blindspot", 3))
REBUILD = "reinstall napari-selfsup-denoise, or run `make prior` in a source checkout to rebuild it"


class PriorUnavailable(ModelFileError):
    """The built-in prior is not installed, unreadable, or does not fit (the message says which)."""


def prior_name(algorithm: str, ndim: int) -> str:
    """The file name of the prior for ``algorithm`` in ``ndim`` spatial dimensions."""
    return f"{algorithm}_{ndim}d.sdmodel"


def weights_folder() -> Traversable:
    """The folder of shipped weights inside the installed package."""
    return resources.files(__package__) / WEIGHTS_FOLDER


def prior_file(algorithm: str, ndim: int) -> Traversable:
    """Where the prior for ``algorithm`` in ``ndim`` spatial dimensions is (or would be) installed."""
    return weights_folder() / prior_name(algorithm, ndim)


@dataclass(frozen=True)
class Prior:
    """A shipped prior: its network weights, how they were trained, and a one-line description.

    Attributes
    ----------
    name : str
        File name without suffix (``blindspot_2d``).
    config : ResolvedConfig
        The configuration it was trained with (algorithm, depth, width, normalisation).
    ndim, channels : int
        Spatial dimensions and image channels.
    weights : InitialWeights
        The network's weights (no noise model) and the record a trained model keeps of them.
    """

    name: str
    config: ResolvedConfig
    ndim: int
    channels: int
    weights: InitialWeights

    @property
    def line(self) -> str:
        """``built-in prior blindspot_2d (version 1, commit 1a2b3c4d, 20000 steps)``."""
        return str(self.weights.source["detail"])


def _record(name: str, meta: dict[str, Any]) -> dict[str, Any]:
    """What a trained model records of the prior it started from (from the file's ``summary["prior"]``)."""
    summary = meta.get("summary") or {}
    info = dict(summary.get("prior") or {})
    found = {
        "version": info.get("version", info.get("generator_version")),
        "commit": info.get("commit", info.get("git_commit")),
        "steps": info.get("steps", summary.get("steps")),
        "seed": info.get("seed"),
    }
    keep = {k: v for k, v in found.items() if v is not None}
    facts = [f"version {keep['version']}"] if "version" in keep else []
    facts += [f"commit {str(keep['commit'])[:10]}"] if "commit" in keep else []
    facts += [f"{keep['steps']} pre-training steps"] if "steps" in keep else []
    detail = f"built-in prior {name}" + (f" ({', '.join(facts)})" if facts else "")
    return {"kind": "builtin", "name": name, **keep, "detail": detail}


@functools.lru_cache(maxsize=4)
def load_prior(algorithm: str, ndim: int) -> Prior:
    """The shipped prior for ``algorithm`` in ``ndim`` spatial dimensions (read once, then cached).

    Raises
    ------
    PriorUnavailable
        When the algorithm has no prior, or its file is missing or unreadable.
    """
    if (algorithm, ndim) not in PRIORS:
        raise PriorUnavailable(f"there is no built-in prior for {algorithm} in {ndim}D")
    name = prior_name(algorithm, ndim)
    item = prior_file(algorithm, ndim)
    if not item.is_file():
        raise PriorUnavailable(f"the built-in prior is not installed ({name} is missing from {weights_folder()}); "
                               f"{REBUILD}")  # fmt: skip
    with resources.as_file(item) as path:
        try:
            meta = read_metadata(path)
            state = network_state(read_weights(path))
            cfg = resolve_defaults(from_dict(meta["config"]), int(meta["ndim"]))
        except (ModelFileError, ConfigError, KeyError, ValueError) as exc:
            raise PriorUnavailable(f"the built-in prior {name} cannot be read ({exc}); {REBUILD}") from exc
    if cfg.algorithm != algorithm or int(meta["ndim"]) != ndim:
        raise PriorUnavailable(f"the built-in prior {name} holds a {cfg.algorithm} {meta['ndim']}D network; {REBUILD}")
    stem = name.removesuffix(".sdmodel")
    return Prior(stem, cfg, ndim, int(meta["channels"]), InitialWeights(state, _record(stem, meta)))


def available() -> list[str]:
    """Names of the priors installed (``blindspot_2d`` ...), for ``selfsup-denoise info`` and the docs."""
    return [prior_name(a, n).removesuffix(".sdmodel") for a, n in PRIORS if prior_file(a, n).is_file()]
