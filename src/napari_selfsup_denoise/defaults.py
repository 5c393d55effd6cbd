"""Per-algorithm, per-dimensionality (and per-device) training defaults: the one table to edit.

:func:`napari_selfsup_denoise.config.resolve_defaults` reads it; this module imports nothing of the package.
"""

from __future__ import annotations

import math
from typing import Any

# Defaults that depend on the algorithm and on 2D / 3D. TrainConfig leaves these fields None (unset);
# resolve_defaults() fills them from this table, once, and never changes a value the caller set.
# The numbers are measured for minute-scale CPU runs (docs/benchmarks.md). Edit them here only.
_N2V = {"patch_size": 64, "patch_size_z": 16, "batch_size": 16, "depth": 3, "base_channels": 32, "learning_rate": 4e-3}
# 3D U-Net (issue 10 item 10; benchmarks/bench_3d.py): the 2D batch and patch (16 x 16x64x64 voxels, depth 3) cost
# ~1340 GFLOP a step (~4 steps a minute on 1 CPU thread), and depth 3's tiling margin (56 voxels) made denoising the
# 32 x 192 x 192 sample a 144 x 304 x 304 window (~5700 GFLOP). 4 x 16x32x32 at depth 2 (CAREamics' depth): ~0.8
# CPU-s a step (~75 a minute), margin 24 (an 80 x 240 x 240 window).
_N2V_3D = {**_N2V, "batch_size": 4, "patch_size": 32, "depth": 2}
ALGORITHM_DEFAULTS: dict[str, dict[int, dict[str, Any]]] = {
    "n2v": {2: _N2V, 3: _N2V_3D},
    "n2v2": {2: _N2V, 3: _N2V_3D},
    "structn2v": {2: _N2V, 3: _N2V_3D},
    "n2n": {2: _N2V, 3: _N2V_3D},
    # At a minute-scale CPU budget the number of steps, not the width, limits the blind-spot network's quality.
    # Its patch must be clearly larger than its receptive field (BlindSpotNet.min_patch; the loop raises smaller
    # ones): depth 3 would need 208 x 208, depth 2 needs 96 x 96 (issue 9: depth 3 on 64 x 64 collapsed).
    # 3D: six directions of 3x3x3 convolutions cost ~25x a 2D step per patch pixel; a shallow, narrow net keeps
    # the tiling margin (receptive field) at 20 voxels; a step is ~63 GFLOP (~1 CPU-s on 1 thread, issue 10).
    "blindspot": {
        2: {**_N2V, "batch_size": 4, "base_channels": 24, "depth": 2, "patch_size": 96},
        3: {**_N2V, "depth": 1, "base_channels": 16, "batch_size": 2, "patch_size": 40},
    },
}
# A batch larger than the table's, with the learning rate unset, trains at the table's rate times
# sqrt(batch / table batch) (Adam's square-root rule), at most this many times the table's rate
# (config.resolve_defaults; docs/benchmarks.md "Batch scaling").
LR_BATCH_MAX_GAIN = 4.0


def batch_scaled_lr(lr: float, batch: int, new_batch: int) -> float:
    """The learning rate for ``new_batch`` when ``lr`` is right for ``batch``.

    Adam's square-root rule for larger batches, ``lr * sqrt(new_batch / batch)``, with the gain
    capped at :data:`LR_BATCH_MAX_GAIN`. A smaller batch keeps ``lr``: the table's 4e-3 was tuned at
    batch 4 (blind-spot) and at batch 16 (N2V) alike, so nothing measured asks for a lower rate.
    """
    return lr * min(LR_BATCH_MAX_GAIN, max(1.0, math.sqrt(new_batch / batch)))


# ``algorithm="auto"`` (the default) picks one algorithm per number of spatial dimensions, for the reason given
# here, which the CLI, the widget and the trained model's summary show (docs/benchmarks.md has the measurements).
AUTO = "auto"
AUTO_PICKS: dict[int, tuple[str, str]] = {
    2: ("blindspot", "2D: blind-spot beat N2V in one-minute CPU runs (camera +2.8 dB, nuclei +1.0 dB)"),
    3: ("blindspot", "3D: blind-spot beat N2V at equal CPU time on a 3D nuclei stack (26.4 vs 23.3 dB)"),
}


# ``auto`` on noise correlated between neighbouring pixels (engine/noise_correlation.py measures it before training):
# the algorithm, and why. structN2V masks the correlated axis (``struct_axis``, set by engine/route.py).
# Measured on camera_g25 with its noise filtered along Y, 175 steps, 1 thread (docs/benchmarks.md): at lag-1 0.49
# blind-spot from the prior gives 21.03-21.20 dB (noisy 20.15: it learns the noise), structN2V along Y 25.59-26.02
# (median 25.86), N2V 26.07 / 23.35 / 25.66 (seeds 0-2: median 25.66, spread 2.72; N2V also sees the correlated
# neighbours, so a longer run can learn the noise, structN2V cannot); at 0.34 blind-spot 24.04 vs structN2V 26.10
# (medians of seeds 0-2, spreads 0.11 / 0.23); at 0.19 blind-spot wins, 27.87 vs 26.08 (spreads 0.24 / 0.40).
AUTO_CORRELATED: dict[int, tuple[str, str]] = {
    2: (
        "structn2v",
        "camera_g25 with noise correlated along Y, 175 steps, 3 seeds: structN2V 26.0-26.3 dB vs blind-spot "
        "23.9-24.1 at lag-1 0.34, 25.6-26.0 vs 21.0-21.2 at 0.49",
    ),
    3: (
        "structn2v",
        "measured in 2D only (camera_g25, noise correlated along Y, 3 seeds: structN2V 26.0-26.3 dB vs "
        "blind-spot 23.9-24.1 at lag-1 0.34)",
    ),
}


def correlated_pick(ndim: int) -> tuple[str, str]:
    """What ``auto`` trains in ``ndim`` dimensions when the noise is correlated along an axis, and why."""
    return AUTO_CORRELATED[ndim]


def pick_algorithm(algorithm: str, ndim: int) -> str:
    """The algorithm a run of ``algorithm`` uses in ``ndim`` spatial dimensions (``auto`` resolved)."""
    return AUTO_PICKS[ndim][0] if algorithm == AUTO else algorithm


def algorithm_choice(algorithm: str, ndim: int) -> str:
    """One line saying what runs: ``blindspot (auto: 2D: ...)`` for ``auto``, else ``algorithm`` itself."""
    if algorithm != AUTO:
        return algorithm
    picked, why = AUTO_PICKS[ndim]
    return f"{picked} (auto: {why})"


# Per-device changes over the algorithm's defaults, by device type ("cpu", "cuda", "mps"), algorithm and 2D / 3D.
# A batch changed here trains at the square-root-scaled rate (batch_scaled_lr) unless the row sets the rate too.
# None yet. A CUDA row of batch 16 for the 2D blind-spot net was tried and taken out (H200, session 7, 30 s from the
# built-in prior, 1 seed): a step of 4 patches is host-bound there (4.0 Mpx/s at batch 4, 19.3 at 16, in 9.1 and
# 7.6 ms), but batch 16 at 8e-3 lost 0.53 dB on camera_g25 (29.62 -> 29.09) and 0.10 dB on nuclei_pg30
# (32.08 -> 31.98), and gained 0.06 dB on nuclei_pg20 (docs/benchmarks.md, "GPU ... session 7"). Session 11, 5 seeds
# (benchmarks/gpu_batch_quality.py, H200): batch 64 at 1.6e-2 kept its step-0/50 checkpoint (it does not fine-tune the
# prior) and lost 0.31 dB on camera_g25 (same-seed median) and 0.02 on nuclei_pg30 against batch 4, so no CUDA row.
DEVICE_DEFAULTS: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}


def device_defaults(algorithm: str, ndim: int, device: str) -> dict[str, Any]:
    """The algorithm's defaults in ``ndim`` dimensions with the row for ``device``'s type applied."""
    base = ALGORITHM_DEFAULTS[algorithm][ndim]
    row = DEVICE_DEFAULTS.get(device.split(":")[0], {}).get(algorithm, {}).get(ndim, {})
    table = {**base, **row}
    if "batch_size" in row and "learning_rate" not in row:
        table["learning_rate"] = batch_scaled_lr(base["learning_rate"], base["batch_size"], row["batch_size"])
    return table


RESOLVED_FIELDS = tuple(_N2V)
