"""PSNR of a denoised telomere time-lapse against the temporal mean of its 200 noisy frames (a static scene).

Not a test. The reference is the mean over time of ``../shared/data/telomeres_timelapse_spotiflow.tif``; the data
range is that mean's range. Prints the noisy frames' PSNR, the result's, and both 99.9th percentiles.

Usage::

    selfsup-denoise run ../shared/data/telomeres_timelapse_spotiflow.tif -o /tmp/telo.tif --max-seconds 60
    python benchmarks/telomere_psnr.py /tmp/telo.tif
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tifffile

from cases import SHARED


def main() -> None:
    tel = tifffile.imread(SHARED / "telomeres_timelapse_spotiflow.tif").astype(np.float64)
    ref = tel.mean(0)
    dr = float(ref.max() - ref.min())

    def psnr(x: np.ndarray) -> float:
        return round(float(10 * np.log10(dr**2 / ((np.asarray(x, np.float64) - ref) ** 2).mean())), 2)

    den = tifffile.imread(sys.argv[1])
    row = {"noisy": psnr(tel), "result": psnr(den)}
    row.update({"p999_noisy": float(np.percentile(tel, 99.9)), "p999_result": float(np.percentile(den, 99.9))})
    print(json.dumps(row))


if __name__ == "__main__":
    main()
