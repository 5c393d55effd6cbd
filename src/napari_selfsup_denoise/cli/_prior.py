"""The built-in prior on the command line: where training starts, ``denoise --model builtin``, ``info builtin``."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..engine.model import Model
from ..engine.start import InitialWeights
from ..prior import PriorUnavailable, available, prior_file, resolve_start, zero_shot_model
from ..prior.builtin import PRIORS

BUILTIN = "builtin"


def start_for(cfg: TrainConfig, shape: tuple[int, ...], device: str) -> InitialWeights:
    """Resolve ``--start-from`` for a training run and say in one line what it starts from."""
    start = resolve_start(cfg, shape, device)
    lead = "warning: " if start.source.get("fallback") else ""
    print(f"{lead}start: {start.source['detail']}", file=sys.stderr)
    return start


def zero_shot(noise_model: str | None) -> Any:
    """A function making the zero-shot model of each input (for ``batch.denoise_files``).

    Raises
    ------
    PriorUnavailable
        When no built-in prior is installed: nothing could be denoised.
    """
    if not available():
        raise PriorUnavailable(f"--model builtin needs the built-in prior, which is not installed "
                               f"({prior_file('blindspot', 2)} is missing); reinstall napari-selfsup-denoise, or "
                               "train a model (selfsup-denoise run / train)")  # fmt: skip
    spec = noise_model or "auto"

    def make(data: Any, axes: str | None) -> Model:
        model = zero_shot_model(data, axes, noise_model=spec)
        print(f"zero-shot: {model.summary['start']['detail']}, noise {_noise(model.summary)}", file=sys.stderr)
        return model

    return make


def _noise(summary: dict[str, Any]) -> str:
    if "noise_sigma" in summary:
        return f"{summary['noise_model']} sigma {summary['noise_sigma']:.4g}"
    return f"{summary.get('noise_model')} a {summary.get('noise_a', 0):.4g} b {summary.get('noise_b', 0):.4g}"


def builtin_files() -> list[AbstractContextManager[Path]]:
    """The installed built-in priors' files, 2D first (for ``selfsup-denoise info builtin``)."""
    items = [prior_file(algorithm, ndim) for algorithm, ndim in PRIORS]
    if not any(item.is_file() for item in items):
        raise PriorUnavailable(f"the built-in prior is not installed ({items[0]} is missing)")
    return [resources.as_file(item) for item in items if item.is_file()]


def start_rows(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """``info``'s rows on where a model's training started (for the built-in prior: how it was pre-trained)."""
    info = summary.get("prior")
    if isinstance(info, dict):
        facts = [f"{info.get('steps')} steps", f"{info.get('wall_seconds')} s on {info.get('device')}",
                 f"seed {info.get('seed')}", f"generator version {info.get('generator_version')}",
                 f"commit {str(info.get('git_commit', info.get('commit')))[:10]}"]  # fmt: skip
        return [("pre-training", ", ".join(facts))]
    start = summary.get("start")
    if not start:
        return [("start", "not recorded (a model saved before the built-in prior existed: random weights)")]
    return [("start", start.get("detail", start.get("kind")))]
