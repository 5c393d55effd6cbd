"""Pre-train the built-in blind-spot prior on procedurally generated images (``make prior``).

The network is the engine's own :class:`BlindSpotNet` at the blind-spot
defaults of ``defaults.py`` (2D: depth 2, 24 channels, one channel). Because the
generator knows the clean image, the prior head is trained directly: the loss
is the Gaussian negative log-likelihood of the *clean* target under the
network's ``N(mu, var_x)`` (``--loss nll``), optionally plus the squared error
of the posterior mean under the true noise variance (``--loss posterior`` /
``both``). As in the engine's own training, crops are the network's
``min_patch`` (96 in 2D, where a quarter of each branch's outputs see no zero
padding; issue 9) and every output enters the loss; ``--valid-only`` instead
keeps only the outputs whose whole receptive field lies inside a larger crop
(exactly the inference context, but 4x the compute per trained output: at equal
CPU time it gave 2.6-2.9 dB less, see docs/benchmarks.md). The noise model
stays per image: the saved file's noise parameters are placeholders.

    SELFSUP_DENOISE_THREADS=1 OMP_NUM_THREADS=1 python tools/pretrain.py --seconds 3600 \\
        --out src/napari_selfsup_denoise/prior/weights/blindspot_2d.sdmodel

Resume an interrupted run with the same command plus ``--resume``.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_selfsup_denoise.config import TrainConfig, resolve_defaults
from napari_selfsup_denoise.engine.device import autocast, configure_threads, describe, pick_device, resolve_precision
from napari_selfsup_denoise.engine.methods.blindspot import LOGVAR_RANGE, BlindSpotMethod
from napari_selfsup_denoise.engine.model import load_model
from napari_selfsup_denoise.engine.nets.blindspot import BlindSpotNet, branch_reach
from napari_selfsup_denoise.engine.noise import gaussian_nll, posterior
from napari_selfsup_denoise.prior.builtin import prior_name
from napari_selfsup_denoise.prior.pool import SynthPool
from napari_selfsup_denoise.prior.synth import GENERATOR_VERSION

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helper module beside this script
from _pretrain_io import git_commit, load_checkpoint, save_checkpoint, save_prior  # noqa: E402

OBJECTIVES = ("nll", "posterior", "both", "bnll")
# beta-NLL (Seitzer et al. 2022): each pixel's NLL weighted by var_x**beta, so the mean learns where var_x is large too
BETA = 0.5
PRIOR_VERSION = "1"  # bump with each shipped retraining
WEIGHTS = Path("src/napari_selfsup_denoise/prior/weights")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=None, help=f"default: {WEIGHTS}/blindspot_2d.sdmodel (3D: _3d)")
    p.add_argument("--ndim", type=int, choices=(2, 3), default=2)
    p.add_argument("--steps", type=int, default=1_000_000, help="optimiser steps at most")
    p.add_argument("--seconds", type=float, default=0.0, help="wall-clock budget (0: steps only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=4, help="crops per step")
    p.add_argument("--crop", type=int, default=0, help="crop edge (0: the net's min_patch, 96 in 2D)")
    p.add_argument("--image", type=int, default=0, help="generated image edge (0: 256 in 2D, 64 in 3D)")
    p.add_argument("--pool", type=int, default=48, help="generated images held at once")
    p.add_argument("--refresh", type=int, default=1, help="images replaced per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (warm-up, then cosine)")
    p.add_argument("--loss", choices=OBJECTIVES, default="nll")
    p.add_argument(
        "--valid-only",
        action="store_true",
        help="loss only on outputs whose receptive field lies inside the crop (crops of 2 x reach + 96)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="autocast dtype as the engine resolves it (bf16 halves a CPU step where it is fast)",
    )
    p.add_argument("--checkpoint-every", type=float, default=300.0, help="seconds between checkpoints")
    p.add_argument("--snapshots", action="store_true", help="also keep a copy of every checkpoint (OUT.stepN)")
    p.add_argument("--resume", action="store_true", help="continue from OUT's checkpoint")
    p.add_argument("--init", type=Path, help="start from the network of this .sdmodel (a fresh optimiser and schedule)")
    p.add_argument("--log-every", type=float, default=30.0, help="seconds between progress lines")
    args = p.parse_args(argv)
    args.out = args.out or WEIGHTS / prior_name("blindspot", args.ndim)  # where the package looks for it
    return args


def valid_margin(net: BlindSpotNet) -> int:
    """Pixels per side whose outputs see the crop border: the receptive field of the fused output."""
    return max(branch_reach(net.depth))


def default_crop(net: BlindSpotNet, ndim: int) -> int:
    """The smallest crop (on the pooling grid) that leaves a valid centre of 96 px (2D) or 16 px (3D)."""
    inner = 96 if ndim == 2 else 16
    edge = 2 * valid_margin(net) + inner
    return -(-edge // net.multiple) * net.multiple


def objective(net: nn.Module, batch: tuple[torch.Tensor, ...], margin: int, kind: str) -> torch.Tensor:
    """The pre-training loss on the outputs whose receptive field lies inside the crop."""
    x, clean, var_n = batch
    out = net(x).float()
    inner = (slice(None), slice(None)) + tuple(slice(margin, n - margin) for n in x.shape[2:])
    mu, logvar = out[:, :1][inner], out[:, 1:][inner].clamp(*LOGVAR_RANGE)
    clean, var_x = clean[inner], torch.exp(logvar)
    loss = gaussian_nll(clean, mu, var_x) if kind in ("nll", "both") else torch.zeros(())
    if kind == "bnll":
        loss = 0.5 * torch.mean(var_x.detach() ** BETA * (torch.log(var_x) + (clean - mu) ** 2 / var_x))
    if kind in ("posterior", "both"):
        mean, _ = posterior(x[inner].float(), mu, var_x, var_n[inner])
        loss = loss + torch.mean((mean - clean) ** 2) / (2 * torch.mean(var_n[inner]).detach().clamp(min=1e-6))
    return loss


def lr_at(peak: float, frac: float, warmup: float = 0.02) -> float:
    """Linear warm-up, then cosine decay to 5 % of ``peak``, over the budget fraction ``frac``."""
    if frac < warmup:
        return peak * max(frac / warmup, 0.02)
    f = min(1.0, (frac - warmup) / (1 - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))


def build(ndim: int) -> tuple[BlindSpotNet, Any]:
    """The engine's blind-spot network at its defaults for ``ndim``, and the resolved config."""
    axes = "YX" if ndim == 2 else "ZYX"
    cfg = resolve_defaults(TrainConfig(algorithm="blindspot", axes=axes), ndim)
    net = BlindSpotMethod(cfg).build(ndim, 1)
    assert isinstance(net, BlindSpotNet)
    return net, cfg


@dataclass
class _Run:
    """One pre-training run: what it trains, on what, and how far it got."""

    args: argparse.Namespace
    net: BlindSpotNet
    opt: torch.optim.Optimizer
    pool: SynthPool
    cfg: Any
    device: torch.device
    margin: int
    crop: int
    info: dict[str, Any]
    state: dict[str, Any]
    losses: list[float] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        """The ``summary["prior"]`` record of the weights file."""
        a, st = self.args, self.state
        return {
            "version": PRIOR_VERSION,
            "commit": self.info["git_commit"],
            "data": f"generated by napari_selfsup_denoise.prior.synth, generator version {GENERATOR_VERSION}",
            "source": "napari-selfsup-denoise tools/pretrain.py",
            "generator": "napari_selfsup_denoise.prior.synth",
            "generator_version": GENERATOR_VERSION,
            "seed": a.seed,
            "steps": int(st["step"]),
            "wall_seconds": round(float(st["elapsed"]), 1),
            "images_generated": int(st["images"]),
            "device": self.info["device_used"],
            "threads": self.info["threads"],
            "git_commit": self.info["git_commit"],
            "torch": torch.__version__,
            "python": platform.python_version(),
            "objective": a.loss,
            "pretrain_args": self.info,
            "network": {
                "depth": self.cfg.depth,
                "base_channels": self.cfg.base_channels,
                "ndim": a.ndim,
                "channels": 1,
            },  # fmt: skip
            "scene_counts_last_segment": self.pool.kinds,
            "noise_parameters": "placeholders (fit per image)",
            "normalisation": "placeholder; per image as engine.data.fit_normalisation on the noisy image",
        }

    def checkpoint(self) -> None:
        """Write the weights file (and a numbered copy with ``--snapshots``) and the resume state."""
        out, meta = self.args.out, self.meta()
        path = save_prior(out, self.net, self.cfg, meta)
        save_checkpoint(out, self.net, self.opt, self.state)
        if self.args.snapshots:
            save_prior(out.with_name(f"{out.stem}.step{self.state['step']}{out.suffix}"), self.net, self.cfg, meta)
        print(f"checkpoint {path} at step {self.state['step']}", flush=True)

    def step(self, frac: float) -> None:
        """One optimiser step at the learning rate of budget fraction ``frac``; one image refreshed."""
        for g in self.opt.param_groups:
            g["lr"] = lr_at(self.args.lr, frac)
        batch = tuple(t.to(self.device) for t in self.pool.batch(self.args.batch, self.crop))
        if self.args.ndim == 2:
            batch = tuple(t.contiguous(memory_format=torch.channels_last) for t in batch)
        with autocast(self.device, resolve_precision(self.args.precision, self.device)):
            loss = objective(self.net, batch, self.margin, self.args.loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.opt.step()
        self.losses.append(float(loss.detach()))
        self.state["step"] += 1
        self.pool.refresh(self.args.refresh)

    def log(self, frac: float) -> None:
        """One progress line."""
        st = self.state
        per_step = st["elapsed"] / max(st["step"], 1)
        print(f"step {st['step']} loss {np.mean(self.losses[-50:]):.4f} lr {lr_at(self.args.lr, frac):.2e} "
              f"{st['elapsed']:.0f} s ({per_step:.2f} s/step) images {st['images']}", flush=True)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the pre-training; returns the exit status."""
    args = parse_args(argv)
    threads = configure_threads()
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    net, cfg = build(args.ndim)
    net = net.to(device)
    if args.ndim == 2:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    own = {id(p) for p in net.noise.parameters()}
    opt = torch.optim.Adam([p for p in net.parameters() if id(p) not in own], lr=args.lr)  # no noise model here
    margin = valid_margin(net) if args.valid_only else 0
    crop = args.crop or (default_crop(net, args.ndim) if args.valid_only else net.min_patch)
    if crop % net.multiple or crop <= 2 * margin:
        sys.exit(f"--crop must be a multiple of {net.multiple} larger than {2 * margin}, got {crop}")
    image = args.image or (256 if args.ndim == 2 else 64)
    state = {"step": 0, "elapsed": 0.0, "images": 0}
    if args.init is not None:
        net.load_state_dict(load_model(args.init).net.state_dict())
    if args.resume:
        state = load_checkpoint(args.out, net, opt)
        print(f"resumed at step {state['step']} ({state['elapsed']:.0f} s)", flush=True)
    rng = np.random.default_rng([args.seed, int(state["step"])])  # a resumed run is seeded by its step
    pool = SynthPool(rng, args.pool, (image,) * args.ndim, cfg.normalisation)
    info = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    info.update(crop=crop, image=image, valid_margin=margin, git_commit=git_commit(), threads=threads)
    info.update(device_used=describe(device, resolve_precision(args.precision, device)))
    print(f"pre-training {cfg.depth=} {cfg.base_channels=} on {info['device_used']}; {info}", flush=True)
    _loop(_Run(args, net, opt, pool, cfg, device, margin, crop, info, state))
    return 0


def _loop(run: _Run) -> None:
    """Train until the step or time budget is spent, checkpointing and logging on the way."""
    args, state, pool = run.args, run.state, run.pool
    t0, start_elapsed, seen = time.perf_counter(), float(state["elapsed"]), pool.generated
    last_ckpt = last_log = t0
    run.net.train()
    while True:
        now = time.perf_counter()
        state["elapsed"] = start_elapsed + now - t0
        state["images"] = int(state.get("images", 0)) + pool.generated - seen
        seen = pool.generated
        frac = state["step"] / args.steps
        if args.seconds > 0:
            frac = max(frac, state["elapsed"] / args.seconds)
        if frac >= 1.0 or now - last_ckpt >= args.checkpoint_every:
            run.checkpoint()
            last_ckpt = now
        if frac >= 1.0:
            return
        run.step(frac)
        if now - last_log >= args.log_every:
            run.log(frac)
            last_log = now


if __name__ == "__main__":
    sys.exit(main())
