"""What the 2D blind-spot network could give on a case if it were trained on the clean image.

Fine-tunes the built-in prior with the *clean* image as the target (the pre-training
loss of ``tools/pretrain.py``: the NLL of the clean pixel under the network's
``N(mu, var_x)``, on random 96 x 96 crops in the four rotations), keeping the
engine's own normalisation and classically fitted noise model, then denoises the
noisy image with the posterior (and, with ``--sigma``, with the true Gaussian
noise). No self-supervised run has better supervision, so this bounds what the
network can give on the image: a target above it needs a larger network, not
more seconds (issues 9 and 11). Step budgets; not a timing benchmark.

Usage::

    python benchmarks/bench_ceiling.py camera_g25 --steps 1500 --sigma 25
    python benchmarks/bench_ceiling.py nuclei_pg30 --steps 1500
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from cases import CASES  # noqa: E402

PATCH, BATCH, WARMUP = 96, 4, 0.05


def _lr(peak: float, frac: float) -> float:
    if frac < WARMUP:
        return peak * frac / WARMUP
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (frac - WARMUP) / (1 - WARMUP))))


def _fit(net, xn: np.ndarray, cn: np.ndarray, steps: int, peak: float, seed: int) -> None:
    """Adam on random rotated crops of (noisy, clean), the NLL of the clean pixel."""
    import torch

    from napari_selfsup_denoise.engine.methods.blindspot import LOGVAR_RANGE
    from napari_selfsup_denoise.engine.noise import gaussian_nll

    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=peak)
    rng = np.random.default_rng(seed)
    h, w = xn.shape
    for s in range(steps):
        for g in opt.param_groups:
            g["lr"] = _lr(peak, s / steps)
        ys, xs, k = rng.integers(0, h - PATCH, BATCH), rng.integers(0, w - PATCH, BATCH), int(rng.integers(0, 4))
        x, c = ([np.rot90(a[i : i + PATCH, j : j + PATCH], k) for i, j in zip(ys, xs)] for a in (xn, cn))
        out = net(torch.from_numpy(np.stack(x)[:, None].copy())).float()
        var = torch.exp(out[:, 1:].clamp(*LOGVAR_RANGE))
        loss = gaussian_nll(torch.from_numpy(np.stack(c)[:, None].copy()), out[:, :1], var)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def _true_sigma_posterior(net, xn: np.ndarray, sigma_n: float) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and prior mean (normalised) with a known Gaussian noise sigma (normalised units)."""
    import torch

    from napari_selfsup_denoise.engine.methods.blindspot import LOGVAR_RANGE

    m = net.margin
    xp = np.pad(xn, m, mode="reflect")
    xp = np.pad(xp, [(0, (-n) % net.multiple) for n in xp.shape], mode="reflect")
    with torch.no_grad():
        out = net(torch.from_numpy(xp)[None, None].contiguous()).float()[0].numpy()
    h, w = xn.shape
    mu = out[0, m : m + h, m : m + w]
    var_x = np.exp(np.clip(out[1, m : m + h, m : m + w], *LOGVAR_RANGE))
    return (xn * var_x + mu * sigma_n**2) / (var_x + sigma_n**2), mu


def main() -> None:
    """Parse arguments, fine-tune on the clean image, print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("case", choices=[c for c in sorted(CASES) if c != "nuclei3d"])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (5 %% warm-up, cosine to 5 %%)")
    ap.add_argument("--sigma", type=float, help="true Gaussian noise sigma (image units): also that posterior")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["SELFSUP_DENOISE_THREADS"] = str(args.threads)
    from napari_selfsup_denoise.metrics import psnr
    from napari_selfsup_denoise.prior import zero_shot_model

    clean, noisy, dr = CASES[args.case]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = zero_shot_model(noisy, "YX")
        row = {"case": args.case, "steps": args.steps, "lr": args.lr, "seed": args.seed}
        row["zero_shot"] = round(psnr(model.denoise(noisy, "YX", check=False), clean, dr), 2)
        norm = model.norm
        xn, cn = (norm.forward(a[None].astype("f4"), 0)[0] for a in (noisy, clean))
        _fit(model.net, xn, cn, args.steps, args.lr, args.seed)
        row["posterior"] = round(psnr(model.denoise(noisy, "YX", check=False), clean, dr), 2)
        row["prior_mean"] = round(psnr(model.denoise(noisy, "YX", output="prior", check=False), clean, dr), 2)
    if args.sigma is not None:
        post, _ = _true_sigma_posterior(model.net, xn, args.sigma / norm.scale[0])
        row["posterior_true_sigma"] = round(psnr(norm.inverse(post[None], 0)[0], clean, dr), 2)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
