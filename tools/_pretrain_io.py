"""Files of a pre-training run: the prior written as a normal ``.sdmodel``, and resumable checkpoints (no pickle)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from napari_selfsup_denoise.engine.data import Normalisation
from napari_selfsup_denoise.engine.model import Model
from napari_selfsup_denoise.engine.nets.blindspot import BlindSpotNet

PRIOR_NOTE = (
    "Built-in prior: the blind-spot network pre-trained on procedurally generated images "
    "(napari_selfsup_denoise.prior.synth; no image file was read). Only the network (prior mean and variance) "
    "is meaningful: the normalisation and the noise-model parameters in this file are placeholders; "
    "fit both to each image (the engine's per-image normalisation and classical noise estimate)."
)


def git_commit() -> str:
    """The repository's commit (with ``+dirty`` when the tree has changes), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def save_prior(path: Path, net: BlindSpotNet, cfg: Any, prior: dict[str, Any]) -> Path:
    """Write the weights as a normal ``.sdmodel`` (``load_model`` opens it); ``prior`` goes into the summary."""
    net_cpu = copy.deepcopy(net).cpu().float()
    axes = "YX" if net.ndim == 2 else "ZYX"
    placeholder = Normalisation("meanstd", (0.0,), (1.0,))
    summary = {"prior": prior, "note": PRIOR_NOTE, "steps": prior["steps"], "seconds": prior["wall_seconds"]}
    return Model(net_cpu.eval(), cfg, axes, net.ndim, 1, placeholder, summary).save(path)


def _resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume.safetensors")


def save_checkpoint(out: Path, net: nn.Module, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Optimiser state, weights and progress, in safetensors (no pickle) next to ``out``."""
    tensors = {"net." + k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    for i, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            tensors[f"opt.{i}.{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    tmp = _resume_path(out).with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"state": json.dumps(state)})
    os.replace(tmp, _resume_path(out))


def load_checkpoint(out: Path, net: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what :func:`save_checkpoint` wrote; returns the progress state."""
    path = _resume_path(out)
    with safe_open(str(path), framework="pt") as fh:
        state = json.loads((fh.metadata() or {})["state"])
    tensors = load_file(str(path))
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    sd = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, i, name = key.split(".", 2)
            sd["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(sd)
    return state
