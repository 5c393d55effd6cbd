"""Image quality against a clean reference, for the demo, the tests and the benchmarks."""

from __future__ import annotations

from typing import Any

import numpy as np


def psnr(image: Any, reference: Any, data_range: float) -> float:
    """Peak signal-to-noise ratio of ``image`` against ``reference``, in dB.

    Parameters
    ----------
    image, reference : array-like
        Same shape; compared in float64.
    data_range : float
        The reference's possible range (255 for 8-bit images).
    """
    from skimage.metrics import peak_signal_noise_ratio

    ref = np.asarray(reference, np.float64)
    return float(peak_signal_noise_ratio(ref, np.asarray(image, np.float64), data_range=data_range))
