"""Images unlike the development cases through the default ``train`` (auto) at a step budget: gain and self-check.

Not a test. Five 256^2 images built from the StarDist nuclei (``../shared/data``) or generated: a 3-photon peak,
200 photons on a camera offset of 1000, sparse spots on a flat background, saturated uint8, and an illumination
ramp. One JSON line per image: the noisy and denoised PSNR against the clean image, what ``auto`` trained, the
noise model, and whether the self-check passed (a result worse than its input must be flagged).

Usage::

    python benchmarks/bench_unseen.py [--steps 150] [--cases pg3,offset1000_pg200,...] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np

from cases import SHARED

CASES = ("pg3", "offset1000_pg200", "spots_pg50", "uint8_clip", "gradient_g")


def _psnr(a: np.ndarray, b: np.ndarray, r: float) -> float:
    return round(float(10 * np.log10(r * r / np.mean((a.astype(np.float64) - b) ** 2))), 2)


def _spots() -> np.ndarray:
    img = np.zeros((256, 256))
    yy, xx = np.mgrid[:256, :256]
    for y, x in np.random.default_rng(3).uniform(10, 246, (40, 2)):
        img += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * 1.5**2))
    return img / img.max()


def case(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """Clean, noisy and the data range of one image (``default_rng(42)`` noise)."""
    import tifffile

    raw = tifffile.imread(SHARED / "nuclei2d_stardist.tif").astype(np.float64)[:256, :256]
    raw /= raw.max()
    r = np.random.default_rng(42)
    if name == "pg3":  # very low light
        c = raw * 3
        return c, r.poisson(c) + r.normal(0, 1, c.shape), 3.0
    if name == "offset1000_pg200":  # a camera baseline under a bright image
        c = raw * 200 + 1000
        return c, r.poisson(c - 1000) + 1000 + r.normal(0, 3, c.shape), 200.0
    if name == "spots_pg50":  # sparse spots on a flat background
        c = _spots() * 50 + 5
        return c, r.poisson(c) + r.normal(0, 1.5, c.shape), 50.0
    if name == "uint8_clip":  # 8-bit with saturated nuclei
        c = np.clip(raw * 320, 0, 255)
        return c, np.clip(np.round(c + r.normal(0, 15, c.shape)), 0, 255).astype(np.uint8), 255.0
    if name == "gradient_g":  # a strong illumination ramp
        c = raw * 100 + np.linspace(20, 400, 256)[None]
        return c, c + r.normal(0, 20, c.shape), 100.0
    raise KeyError(f"unknown case {name!r}; one of {', '.join(CASES)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    import torch

    from napari_selfsup_denoise import train

    torch.set_num_threads(a.threads)
    for name in a.cases.split(","):
        clean, noisy, rng = case(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = train(noisy, axes="YX", max_steps=a.steps, max_seconds=None, seed=a.seed)
            out = model.denoise(noisy, "YX")
        s, chk = model.summary, model.summary.get("self_check", {})
        row = {"case": name, "steps": a.steps, "noisy": _psnr(noisy, clean, rng), "out": _psnr(out, clean, rng)}
        row.update({"algorithm": str(s.get("algorithm_choice", "")).split(" (")[0], "noise": s.get("noise_model")})
        row.update({"check_passed": chk.get("passed"), "image_check_suspect": bool(model.last_check.suspect)})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
