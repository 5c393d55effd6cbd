"""Self-check of a trained model and of a result: does the residual look like the noise?

A biologist cannot see PSNR, so every model carries figures that can be
computed without the clean image, on pixels the training never saw:

Blind-spot models (the network predicts a prior ``N(mu, var_x)``, the noise
model ``var_n``):

- ``calibration``: mean of ``(y - mu)**2 / (var_x + var_n)``, about 1 when the
  prior and the noise model explain the data;
- ``noise_fit``: the fitted noise variance over a classical local estimate;
- ``residual``: the variance of ``y - posterior`` over the ``var_n**2 / (var_x + var_n)``
  the model predicts for it;
- ``agreement``: the spread of ``posterior - mu`` over the ``var_x**2 / (var_x + var_n)``
  the fitted noise implies;
- ``prior_residual`` and ``prior_lag1``: the variance of ``y - mu`` over the
  classical noise estimate (above 1 when the prior mean is wrong), and the
  lag-1 autocorrelation of that residual (image structure left in it).

N2V-family models have no noise model; their ``residual`` is the variance of
``y - denoised`` over the classical noise estimate, with ``residual_lag1`` and
``residual_corr`` (correlation with the denoised image) for structure.

A check fails when a figure leaves its range (:data:`RANGES`, calibrated on the
development cases; see the project notes of issue 9). A failure of the
posterior's figures alone makes the prior mean the safer output. When nothing
fails, a blind-spot model still returns whichever of its posterior and prior
mean has the smaller estimated error on the same pixels (:mod:`._check_choice`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _check_figures as fig
from ._check_budget import budget_voxels, check_margin, fit
from ._check_choice import OutputChoice, choose_output
from ._check_figures import Model
from ._check_result import Figure, SelfCheck, check_record, figure
from .arrays import canonical
from .check_ranges import RANGES, meaning
from .data import DataError, fit_normalisation
from .device import module_device

__all__ = ["RANGES", "Decision", "Figure", "OutputChoice", "SelfCheck", "SuspectResultWarning", "check_image",
           "check_record", "check_training", "decide", "figures_for", "verdict"]  # fmt: skip


class SuspectResultWarning(UserWarning):
    """A self-check failed: the result may be wrong (the message says what to try)."""


def figures_for(model: Model, crops: list[dict[str, np.ndarray]]) -> list[Figure]:
    """The figures of :data:`RANGES` that apply to ``model``, from predicted crops."""
    y = [c["y"] for c in crops]
    if model.algorithm != "blindspot":
        out = [c["output"] for c in crops]
        var = fig.temporal_capped(crops, fig.classical_variance(crops, "output"))
        res = [a - b for a, b in zip(y, out)]
        found = [
            figure("n2v_residual", fig.ratio([r * r for r in res], var)),
            figure("residual_lag1", fig.lag1(res, var)),
            figure("residual_corr", fig.correlation(res, out)),
        ]
        # structN2V is for noise correlated between neighbours: a lag-1 correlation is then noise, not structure
        return [f for f in found if not (model.algorithm == "structn2v" and f.name == "residual_lag1")]
    mu, post = [c["prior"] for c in crops], [c["output"] for c in crops]
    vx, vn = [c["var_x"] for c in crops], [c["var_n"] for c in crops]
    tot = [a + b for a, b in zip(vx, vn)]
    var = fig.classical_variance(crops, "prior")
    prior_res = [a - b for a, b in zip(y, mu)]
    z = np.concatenate([(r * r / t).ravel() for r, t in zip(prior_res, tot)])
    return [
        figure("prior_residual", fig.ratio([r * r for r in prior_res], var)),
        figure("prior_lag1", fig.lag1(prior_res, var)),
        figure("calibration", float(np.mean(z, dtype=np.float64))),
        figure("noise_fit", fig.ratio(vn, var)),
        figure("residual", fig.ratio([(a - b) ** 2 for a, b in zip(y, post)], [n * n / t for n, t in zip(vn, tot)])),
        figure("agreement", fig.ratio([(a - b) ** 2 for a, b in zip(post, mu)], [x * x / t for x, t in zip(vx, tot)])),
    ]


# A network mean closer to the noisy image than the noise allows: the blind spot did not hide each pixel's noise
# (the real telomere time-lapse: neighbouring pixels' noise correlated 0.48 along Y; docs/benchmarks.md, session 8).
CORRELATED_ADVICE = (
    "if the noise is correlated between neighbouring pixels (stripes, a camera's row or column noise), try "
    "structN2V masking along that axis (--algorithm structn2v --set struct_axis='\"Y\"' or '\"X\"')"
)
# structN2V is what correlated noise calls for: pointing it to the blind spot would undo that choice. On the real
# telomere time-lapse its good result read n2v_residual 0.65-0.70 (the classical noise estimate is high there).
STRUCT_ADVICE = (
    "retrain with a longer budget or check the axes; keep structN2V for noise correlated between pixels (a "
    "1-pixel blind spot, as in N2V and the blind-spot network, learns it); on a time-lapse with correlated "
    "noise this figure can read low on a good result (docs/benchmarks.md, correlated noise)"
)


def verdict(
    figures: list[Figure], stage: str, pixels: int, held_out: bool, output: str = "posterior", algorithm: str = ""
) -> SelfCheck:
    """Judge ``figures`` of a model trained with ``algorithm``: which part is suspect, the safer output, what to say."""
    failed = [f for f in figures if not f.passed]
    parts = {f.part for f in failed}
    where = "pixels held out from training" if held_out else "pixels of the image"
    if not failed:
        text = f"the residual looks like the noise on {pixels} {where}"
        if pixels == 0:
            text = "intensities match the training image's" if figures else "not checked (constant, or NaN values)"
        return SelfCheck(tuple(figures), stage, pixels, held_out, "", "", text, "")
    why = "; ".join(
        f"{meaning(f.name, f.value, f.low)} ({f.name} {f.value:.2f}, expected {f.low:.2f}-{f.high:.2f})" for f in failed
    )
    if "input" in parts:
        suspect, fallback = "input", ""
        advice = "retrain on this image, or fine-tune the model on it"
    elif parts & {"prior", "output"}:
        suspect, fallback = "model", ""
        advice = (
            "retrain with safer settings (the default batch size, a longer budget), or use N2V (--algorithm n2v)"
            if "prior" in parts
            else STRUCT_ADVICE
            if algorithm == "structn2v"
            else "retrain with a longer budget, check the axes, or try the blind-spot algorithm"
        )
        if any(f.name == "prior_residual" and f.value < f.low for f in failed):
            advice = CORRELATED_ADVICE
    else:
        suspect, fallback = "posterior", "prior" if output == "posterior" else ""
        advice = "use the prior mean (output=prior / --prior), set the noise model (--noise-model), or retrain"
    head = "the result is suspect" if suspect != "posterior" else "the noise model is suspect"
    if fallback:
        head += "; the prior mean (the network's own estimate) was returned instead of the posterior"
    return SelfCheck(tuple(figures), stage, pixels, held_out, suspect, fallback, f"{head}: {why}", advice)


def budgeted(model: Model, boxes: list[fig.Box], patch: tuple[int, ...] | None = None) -> list[fig.Box]:
    """``boxes`` cut to the self-check's limits (:mod:`._check_budget`) for ``model`` trained on ``patch``.

    ``patch`` defaults to the one recorded in the model's summary, else the configured one.
    """
    cfg = model.config
    if patch is None:
        patch = getattr(model, "summary", {}).get("patch")
    if patch is None and cfg.patch_size is not None:
        patch = (cfg.patch_size_z or 1,) * (model.ndim == 3) + (cfg.patch_size,) * 2
    margin = check_margin(model.margin, model.multiple, model.ndim, model.algorithm == "blindspot")
    return fit(boxes, model.ndim, margin, model.multiple, budget_voxels(cfg.batch_size, patch))


def check_training(model: Model, sampler: Any) -> SelfCheck:
    """Self-check of a freshly trained model on its sampler's held-out pixels (``model.net`` in eval mode).

    It runs after Stop, before the result: its crops are cut to the limits of :mod:`._check_budget`
    (at most :data:`~._check_budget.CHECK_STEPS` training steps of ``sampler``'s batches).
    """
    return check_crops(model, *training_crops(model, sampler))


def training_crops(model: Model, sampler: Any) -> tuple[list[dict[str, np.ndarray]], bool]:
    """The crops :func:`check_training` predicts with ``model``, and whether they were held out from training."""
    boxes, held_out = fig.held_out_boxes(sampler, model.ndim)
    boxes = budgeted(model, boxes, tuple(sampler.patch))
    return fig.predicted_crops(model, sampler.canon, boxes, module_device(model.net)), held_out


def check_crops(model: Model, crops: list[dict[str, np.ndarray]], held_out: bool) -> SelfCheck:
    """The training-stage self-check of ``model`` from its predicted ``crops`` (:func:`training_crops`)."""
    pixels = sum(int(c["y"].size) for c in crops)
    check = verdict(figures_for(model, crops), "training", pixels, held_out, algorithm=model.algorithm)
    choice = choose_output(crops, held_out) if model.algorithm == "blindspot" else None
    return dataclasses.replace(check, choice=choice)


MIN_EDGE = 16  # smaller images (in Y or X) give too few pixels for the residual figures


def intensity_figures(model: Model, canon: Any) -> list[Figure]:
    """How far ``canon``'s intensities are from the training image's (worst channel); none for a constant image."""
    try:
        new = fit_normalisation(canon, model.norm.method, model.config.percentiles)
    except DataError:
        return []
    spread = [n / o for n, o in zip(new.scale, model.norm.scale)]
    shift = [(n - o) / s for n, o, s in zip(new.offset, model.norm.offset, model.norm.scale)]
    worst = max(spread, key=lambda r: abs(math.log(r)))
    return [figure("intensity", worst), figure("intensity_shift", max(shift, key=abs))]


def check_image(model: Model, image: Any, axes: str | None = None, output: str = "posterior") -> SelfCheck:
    """Self-check of ``model`` applied to ``image``: its intensities against the training image's, and the residual.

    Parameters
    ----------
    model : Model
        A trained model.
    image : array-like
        The image to denoise (numpy, zarr or dask); only a few crops are read and predicted.
    axes : str, optional
        Axes of ``image`` (resolved as :meth:`Model.denoise` does).
    output : str
        The output the caller will return (``posterior`` or ``prior``).
    """
    axes = model.resolve_axes(tuple(image.shape), axes)
    canon = canonical(image, axes)
    figures = intensity_figures(model, canon)
    pixels, choice = 0, None
    # the residual figures mean nothing at a wrong intensity scale, or on a constant or tiny image
    if figures and all(f.passed for f in figures) and min(canon.shape[4:]) >= MIN_EDGE:
        device = module_device(model.net)
        boxes = budgeted(model, fig.image_boxes(tuple(canon.shape), model.ndim))
        crops = fig.predicted_crops(model, canon, boxes, device)
        found = figures_for(model, crops)
        figures += [f for f in found if output == "posterior" or f.part != "posterior"]
        pixels = sum(int(c["y"].size) for c in crops)
        choice = choose_output(crops, False) if model.algorithm == "blindspot" and output == "posterior" else None
    check = verdict(figures, "image", pixels, False, output, model.algorithm)
    return dataclasses.replace(check, choice=choice)


@dataclass(frozen=True)
class Decision:
    """What to return when ``model`` is applied to an image, after both self-checks.

    Attributes
    ----------
    output : str
        The output to compute: the one asked for; ``prior`` when the posterior is suspect, or when
        the prior mean's estimated error is the smaller (:attr:`choice`).
    trained : SelfCheck or None
        The model's own check from training (None for models saved before self-checks existed).
    image : SelfCheck
        The check of the model on this image.
    """

    output: str
    trained: SelfCheck | None
    image: SelfCheck

    @property
    def suspect(self) -> bool:
        """True when the returned output itself failed a check (no safer output exists)."""
        bad = [c for c in (self.trained, self.image) if c is not None and not c.passed]
        return any(not (c.suspect == "posterior" and self.output == "prior") for c in bad)

    @property
    def fell_back(self) -> bool:
        """True when the prior mean replaces the posterior asked for because the posterior is suspect."""
        return any(c is not None and c.fallback == "prior" for c in (self.trained, self.image))

    @property
    def choice(self) -> OutputChoice | None:
        """The estimated errors of both outputs: from training's held-out pixels, else from this image."""
        if self.trained is not None and self.trained.choice is not None:
            return self.trained.choice
        return self.image.choice

    @property
    def chose_prior(self) -> bool:
        """True when the prior mean is returned because its estimated error is the smaller (nothing failed)."""
        chosen = self.choice is not None and self.choice.output == "prior"
        return self.output == "prior" and not self.fell_back and chosen

    def messages(self) -> list[str]:
        """One plain warning per failed check: what it means and what to try."""
        return [
            f"self-check ({c.stage}): {c.verdict}. What to try: {c.advice}."
            for c in (self.trained, self.image)
            if c is not None and not c.passed
        ]

    def notes(self) -> list[str]:
        """The warnings of :meth:`messages`, and a plain note when the prior mean was chosen without a failure."""
        chosen = [f"self-check: the model {self.choice.phrase()}."] if self.chose_prior and self.choice else []
        return self.messages() + chosen


def decide(model: Model, image: Any, axes: str | None = None, output: str = "posterior") -> Decision:
    """Check ``model`` on ``image`` and choose what to return instead of the posterior asked for.

    The prior mean replaces the posterior when the posterior is suspect, or when the
    model's choice (:class:`OutputChoice`, made on held-out pixels at the end of
    training, else on this image) estimates the prior mean's error to be the smaller.
    """
    stored = getattr(model, "summary", {}).get("self_check")
    trained = SelfCheck.from_dict(stored) if stored else None
    prior_chosen = trained is not None and trained.choice is not None and trained.choice.output == "prior"
    if trained is not None and output == "posterior" and (trained.fallback == "prior" or prior_chosen):
        output = "prior"
    image_check = check_image(model, image, axes, output)
    decision = Decision(output, trained, image_check)
    if image_check.fallback == "prior" or (decision.choice is not None and decision.choice.output == "prior"):
        decision = dataclasses.replace(decision, output="prior")
    return decision
