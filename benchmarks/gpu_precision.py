"""Does bf16 (autocast) training lose quality? The two quality tests' runs at fp32 and bf16, equal steps, on a device.

tests/engine/test_train.py trains N2V (150 steps, batch 8, 16 channels) and N2V2 (1200 steps, batch 4,
32^2 patches, depth 2, 16 channels) on a 128^2 crop of skimage's camera with Gaussian noise (sigma 25)
and asks for a PSNR gain. N2V2 has no full-resolution skip connection and learns fine detail ~4x slower
than N2V: at the 300 steps it had until issue 12 it gained 1.1-3.6 dB on the H200 (fp32 and bf16, 4 of
6 runs flagged) and 2.3-4.0 on the CPU (seeds 0-4, 4 flagged); at 1200 steps the CPU gains 5.0-5.9, none
flagged. The ``--n2v2-steps`` option reruns the old budget. This runs both at ``fp32`` and ``bf16`` for a few seeds and
prints one JSON line per run (gain in dB, the denoising itself at fp32; whether the training self-check
passed, and whether the result was suspect and which output was returned: a bf16 run that ends below the
noisy input must be flagged), then one per case and precision with the mean.

Usage::

    python benchmarks/gpu_precision.py [--device cuda] [--seeds 0,1,2] [--steps-factor 1.0] [--n2v2-steps 1200]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

CASES = {
    "n2v": {"algorithm": "n2v", "max_steps": 150, "batch_size": 8, "base_channels": 16},
    "n2v2": {
        "algorithm": "n2v2",
        "max_steps": 1200,
        "patch_size": 32,
        "batch_size": 4,
        "base_channels": 16,
        "depth": 2,
    },
}


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps-factor", type=float, default=1.0, help="scale the step budgets (a dry run: 0.05)")
    p.add_argument("--n2v2-steps", type=int, default=CASES["n2v2"]["max_steps"], help="N2V2's budget (before scaling)")
    a = p.parse_args()
    import skimage

    from napari_selfsup_denoise import train

    warnings.filterwarnings("ignore")
    clean = skimage.data.camera()[200:328, 180:308].astype(np.float32)
    noisy = clean + np.random.default_rng(42).normal(0, 25, clean.shape).astype(np.float32)
    base = _psnr(noisy, clean)
    gains: dict[tuple[str, str], list[float]] = {}
    for case, cfg in CASES.items():
        steps = max(2, round((a.n2v2_steps if case == "n2v2" else cfg["max_steps"]) * a.steps_factor))
        for seed in [int(s) for s in a.seeds.split(",")]:
            for precision in ("fp32", "bf16"):
                t0 = time.perf_counter()
                model = train(noisy, axes="YX", **{**cfg, "max_steps": steps}, max_seconds=None, seed=seed,
                              device=a.device, precision=precision)  # fmt: skip
                gain = _psnr(model.denoise(noisy, precision="fp32", device=a.device), clean) - base
                dec = model.last_check  # what the user would be told: is a loss of quality flagged?
                gains.setdefault((case, precision), []).append(gain)
                row = {"what": "precision", "case": case, "seed": seed, "precision": precision, "steps": steps}
                row.update({"gain_db": round(gain, 3), "seconds": round(time.perf_counter() - t0, 1)})
                row["check_passed"] = None if model.check is None else bool(model.check.passed)
                row.update({"suspect": None if dec is None else dec.suspect, "output": getattr(dec, "output", None)})
                print(json.dumps(row), flush=True)
    for (case, precision), g in gains.items():
        print(json.dumps({"what": "precision-mean", "case": case, "precision": precision, "seeds": len(g),
                          "mean_gain_db": round(float(np.mean(g)), 3)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
