"""The exported network: a self-contained architecture file, its keyword arguments and its weights.

N2V, N2V2, structN2V and N2N export their U-Net; blind-spot models export
:class:`~._wrappers.BlindSpotDenoiser` (network, fitted noise model and the
posterior mean in one module; the prior mean when the model's self-check chose
it). The architecture file is assembled from the source of the very modules
that trained the model, with their imports gathered in one header (PyTorch,
numpy, a few standard-library modules; see :data:`ALLOWED`), so the package
cannot drift from them.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
from torch import nn

from ..engine.model import Model

# What the copied modules may import at top level: PyTorch, numpy (every bioimageio environment has it) and a few
# standard-library modules. Relative imports name other copied modules (the nets) and are dropped.
ALLOWED = {"__future__", "torch", "numpy", "functools", "math", "itertools", "typing", "collections", "dataclasses"}
_IMPORT = re.compile(r"^(?:from|import) ([\w.]+)")
_RELATIVE = re.compile(r"^from (?:\.\.engine\.nets\.|\.)(\w+) import \w+(?:, \w+)*\s*$")


class ArchitectureError(RuntimeError):
    """The model's network cannot be written as a self-contained architecture file."""


@dataclass(frozen=True)
class Architecture:
    """What the package needs to rebuild the network.

    Attributes
    ----------
    source : str
        Python source that defines ``callable``; it imports torch, numpy and the standard library only.
    callable : str
        Name of the ``nn.Module`` class in ``source``.
    kwargs : dict
        Keyword arguments that build it.
    state : dict of str to torch.Tensor
        Its weights.
    """

    source: str
    callable: str
    kwargs: dict[str, Any]
    state: dict[str, torch.Tensor]

    def build(self) -> nn.Module:
        """Run ``source`` in a fresh namespace and load ``state`` strictly (the check a consumer makes)."""
        namespace: dict[str, Any] = {"__name__": "bmz_architecture"}
        exec(compile(self.source, "architecture.py", "exec"), namespace)  # our own generated code
        net = namespace[self.callable](**self.kwargs)
        net.load_state_dict(self.state, strict=True)
        return net.eval()


def architecture_source(modules: list[ModuleType]) -> str:
    """One Python file made of ``modules``' sources, their imports gathered in one header (see :data:`ALLOWED`)."""
    header: list[str] = ["from __future__ import annotations"]
    bodies: list[str] = []
    copied: set[str] = set()
    defined: dict[str, str] = {}
    for module in modules:
        bodies.append(f"# --- from {module.__name__} ---")
        source = inspect.getsource(module)
        for name in _top_level_names(source):  # one namespace: a second definition would replace the first
            if name in defined:
                raise ArchitectureError(f"{module.__name__} and {defined[name]} both define {name!r}")
            defined[name] = module.__name__
        for line in source.splitlines():
            if not line.startswith(("import ", "from ")):
                bodies.append(line)
            elif rel := _RELATIVE.match(line):
                if rel.group(1) not in copied:  # its names must already be defined above in the file
                    raise ArchitectureError(f"{module.__name__} imports {line.strip()!r}: not copied before it")
                continue
            elif (m := _IMPORT.match(line)) and m.group(1).split(".")[0] in ALLOWED:
                if line.strip() not in header:
                    header.append(line.strip())
            else:
                raise ArchitectureError(
                    f"{module.__name__} imports {line.strip()!r}; the exported architecture file may import only "
                    f"{', '.join(sorted(ALLOWED - {'__future__'}))}"
                )
        copied.add(module.__name__.rsplit(".", 1)[-1])
    doc = '"""Network architecture exported by napari-selfsup-denoise; needs PyTorch and numpy only."""'
    return "\n".join([doc, "", *header, "", *bodies]) + "\n"


def _top_level_names(source: str) -> list[str]:
    """Names a module's source defines at top level (functions, classes, assignments), dunders left out."""
    names = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    return [n for n in names if not n.startswith("__")]


def _blindspot(model: Model) -> Architecture:
    from ..engine import noise
    from ..engine.methods import blindspot
    from ._trust import exported_output

    net: Any = model.net
    a, b = (t.detach().float().cpu() for t in net.noise.line())
    kwargs = {
        "margin": model.margin,
        "ndim": int(net.ndim),
        "channels": int(net.channels),
        "depth": int(net.depth),
        "base": int(net.branch.enc[0].conv1.out_channels),
        "poisson": net.noise.kind == "poisson-gaussian",
        "logvar_min": float(blindspot.LOGVAR_RANGE[0]),
        "logvar_max": float(blindspot.LOGVAR_RANGE[1]),
        "min_var": float(noise.MIN_VAR),
        "prior_only": exported_output(model) == "prior",
    }
    state = {f"net.{k}": v for k, v in _plain_state(net).items() if not k.startswith("noise.")}
    state |= {"noise_a": a.contiguous(), "noise_b": b.contiguous()}
    return Architecture(_source(), "BlindSpotDenoiser", kwargs, state)


def _unet(model: Model) -> Architecture:
    c, net = model.config, model.net
    kwargs = {
        "margin": model.margin,
        "ndim": model.ndim,
        "in_channels": model.channels,
        "out_channels": model.channels,
        "depth": int(c.depth),
        "base": int(c.base_channels),
        "batch_norm": bool(c.batch_norm),
        "residual": bool(c.residual),
        "n2v2": bool(getattr(net, "n2v2", False)),
    }
    state = {f"net.{k}": v for k, v in _plain_state(net).items()}
    return Architecture(_source(), "UNetDenoiser", kwargs, state)


def _source() -> str:
    from ..engine.nets import blindspot, reach, unet
    from . import _wrappers

    return architecture_source([unet, reach, blindspot, _wrappers])


def _plain_state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}


def architecture(model: Model) -> Architecture:
    """The module a package exports for ``model`` (see the module docstring)."""
    return _blindspot(model) if model.algorithm == "blindspot" else _unet(model)
