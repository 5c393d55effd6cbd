"""Does the validation pick the best weights? The held-out loss and the true PSNR at every validation.

Not a test. Trains one blind-spot model on a development case (benchmarks/cases.py) and, at
every validation the training makes, also denoises the whole image with the weights of that
moment (posterior and prior mean, no self-check) and scores them against the clean image.
One JSON line per validation, then one for the model that training returned. It answers
whether a checkpoint kept early (a GPU run of thousands of steps kept step 150) is the best
the run saw, or the validation's noise. With ``--ema`` each row also scores the moving average
(``average_posterior``, ``average_prior``): that is what the validation compares then.

Usage::

    python benchmarks/val_trace.py --case nuclei_pg20 --seconds 30 --device cuda
    python benchmarks/val_trace.py --case camera_g25 --steps 120 --crop 128 --threads 1
    python benchmarks/val_trace.py --case nuclei_pg20 --seconds 20 --device cuda --ema 0.99

With ``--ema`` the weights scored at each validation are the moving average that is validated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import CASES  # noqa: E402

OUTS = ("posterior", "prior")


def psnr(x: np.ndarray, clean: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB."""
    mse = float(np.mean((np.asarray(x, np.float64) - clean) ** 2))
    return round(10 * np.log10(data_range**2 / mse), 3)


def trace(a: argparse.Namespace) -> list[dict[str, Any]]:
    """Train once; a row per validation with the held-out loss and the PSNR of both outputs."""
    import torch

    import napari_selfsup_denoise.engine.train as train_mod
    from napari_selfsup_denoise import TrainConfig

    torch.set_num_threads(a.threads)
    clean, noisy, data_range = CASES[a.case]()
    if a.crop:
        y0, x0 = (s // 2 - a.crop // 2 for s in noisy.shape)
        clean, noisy = (v[y0 : y0 + a.crop, x0 : x0 + a.crop] for v in (clean, noisy))
    rows: list[dict[str, Any]] = []
    original, t0 = train_mod._track_val, time.perf_counter()

    def score(model: Any, st: Any) -> dict[str, Any]:
        row: dict[str, Any] = {"step": st.step, "val_loss": round(st.val_loss, 6)}
        row["s"] = round(time.perf_counter() - t0, 2)
        for out in OUTS:
            row[out] = psnr(model.denoise(noisy, device=a.device, output=out, check=False), clean, data_range)
        model.net.train()
        return row

    def tracked(model: Any, sampler: Any, st: Any) -> None:
        original(model, sampler, st)
        rows.append(score(model, st))  # the trained weights
        if st.average is not None:  # and the average, which is what the validation scored
            with st.average.applied(model.net):
                rows[-1].update({f"average_{k}": v for k, v in score(model, st).items() if k in OUTS})
        print(json.dumps({"case": a.case, **rows[-1]}), flush=True)

    budget = {"max_steps": a.steps, "max_seconds": None} if a.steps else {"max_seconds": a.seconds}
    cfg = TrainConfig(
        algorithm="blindspot", axes="YX", seed=a.seed, device=a.device, batch_size=a.batch, ema_decay=a.ema, **budget
    )
    train_mod._track_val = tracked
    try:
        gen = train_mod.train(noisy, cfg, start=_start(cfg, noisy, a.start))
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                model = stop.value
                break
    finally:
        train_mod._track_val = original
    s = model.summary
    final = {"case": a.case, "returned": True, "best_step": s.get("best_step"), "steps": s.get("steps")}
    for out in ("posterior", "prior"):
        final[out] = psnr(model.denoise(noisy, device=a.device, output=out, check=False), clean, data_range)
    print(json.dumps(final), flush=True)
    return rows


def _start(cfg: Any, noisy: np.ndarray, start_from: str) -> Any:
    """The start weights as the API resolves them (the built-in prior by default), or None for random weights."""
    from napari_selfsup_denoise.prior import resolve_start

    return None if start_from == "random" else resolve_start(cfg.replace(start_from=start_from), tuple(noisy.shape))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", default="nuclei_pg20", choices=sorted(CASES))
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=int)
    budget.add_argument("--seconds", type=float)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--start", default="builtin", choices=("builtin", "random"), help="start weights (as the API)")
    p.add_argument("--ema", type=float, default=0.0, help="TrainConfig.ema_decay (the average is what is validated)")
    trace(p.parse_args())


if __name__ == "__main__":
    main()
