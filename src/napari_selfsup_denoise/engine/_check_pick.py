"""After a Stop, a 3D blind-spot run's last choice of weights, made on the self-check's own held-out crops.

A run keeps the weights with the lowest validation loss; stopped between two validations, its current
weights are one more candidate. Validating them cost a validation batch (3D: 8 patches, 1.4 training
steps) before the self-check, which predicts held-out crops anyway. A blind-spot network's loss is a
likelihood that those crops give at no extra cost, so the current weights and the best validated ones
are both self-checked on the same crops and the one with the lower loss is kept, with the check it
already has: two self-check passes (3D sample: 40 GFLOP, 0.3 training steps) instead of a validation
and one (194 GFLOP). On the 3D sample, 3 seeds x 7 Stops from the built-in prior (1-30 steps), this
kept the same weights as the 8-patch validation batch in all 21 (docs/benchmarks.md). N2V's masked loss
has no counterpart on unmasked predictions: its runs validate as before.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._check_figures import Model
from ._check_result import SelfCheck
from ._training import RunState
from .checks import check_crops, training_crops


def held_out_nll(crops: list[dict[str, np.ndarray]]) -> float:
    """Mean negative log-likelihood of blind-spot ``crops`` (the training loss, :func:`.noise.gaussian_nll`)."""
    num, count = 0.0, 0
    for c in crops:
        var = c["var_x"] + c["var_n"]
        num += float(np.sum(np.log(var) + (c["y"] - c["prior"]) ** 2 / var, dtype=np.float64))
        count += int(c["y"].size)
    return 0.5 * num / max(count, 1)


def chooses_on_crops(model: Model, st: RunState) -> bool:
    """Whether the run's last choice is :func:`check_best`'s: a 3D blind-spot run stopped after its last validation.

    Not in 2D, where the validation batch is cheap and the crops chose otherwise 3 times in 36 (nuclei_pg30;
    once 0.16 dB lower), nor with a weight average (``TrainConfig.ema_decay``): its candidates are averages.
    """
    stopped = st.stopped == "stopped" and st.step > 0 and st.average is None and model.ndim == 3
    return model.algorithm == "blindspot" and stopped and st.best_state is not None and st.val_step != st.step


def check_best(model: Model, sampler: Any, st: RunState) -> SelfCheck:
    """The self-check of whichever of the current weights and ``st.best_state`` fits the held-out crops better.

    ``st.best_state`` (kept when its loss is not higher) is then in ``model.net``; when the current
    weights are kept, ``st`` says so: no best state, and no validation loss for them.
    """
    crops, held_out = training_crops(model, sampler)
    best = st.best_state
    if best is None:
        return check_crops(model, crops, held_out)
    current = {k: v.detach().clone() for k, v in model.net.state_dict().items()}
    model.net.load_state_dict(best)
    rival, _ = training_crops(model, sampler)
    if held_out_nll(rival) <= held_out_nll(crops):
        return check_crops(model, rival, held_out)
    model.net.load_state_dict(current)
    st.best_state, st.best, st.best_step = None, math.inf, st.step
    return check_crops(model, crops, held_out)
