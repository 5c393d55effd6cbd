"""What a package computes and says of its model's self-check at the end of training.

A package runs in other tools (bioimageio.core, deepImageJ, ilastik) with none of our checks,
so the export fixes the output the training check decided on (the prior mean of a blind-spot
model whose check chose it, or fell back to it) and refuses a model whose own check failed
with no safer output, unless asked to write it marked suspect.
"""

from __future__ import annotations

from typing import Any

from ..engine.checks import SelfCheck
from ..engine.model import Model


class SuspectModelError(ValueError):
    """The model failed its own self-check with no safer output; nothing was written."""


def exported_output(model: Model) -> str:
    """``prior`` when the training check chose the prior mean or fell back to it, else ``posterior``."""
    check = model.check
    if model.algorithm != "blindspot" or check is None:
        return "posterior"
    chosen = check.choice is not None and check.choice.output == "prior"
    return "prior" if check.fallback == "prior" or chosen else "posterior"


def is_suspect(model: Model) -> bool:
    """Whether the model's own check failed with no safer output to fall back to."""
    check = model.check
    return check is not None and not check.passed and not check.fallback


def refusal(model: Model, how: str) -> str:
    """Why a suspect model is not exported, and ``how`` to export it anyway (an option's name)."""
    check = model.check
    assert check is not None
    return (
        f"the model failed its self-check at the end of training: {check.verdict}. What to try: {check.advice}. "
        "A package runs in other tools without any check, so nothing was written; "
        f"{how} to write it anyway, marked suspect in its README and description"
    )


def record(model: Model) -> dict[str, Any]:
    """The self-check kept in the package's description (``config``): the check, the output, the verdict word."""
    check = model.check
    status = "not checked" if check is None else "passed" if check.passed else "failed"
    if is_suspect(model):
        status = "suspect, exported with accept_suspect"
    return {"status": status, "output": exported_output(model), "check": check.to_dict() if check else None}


def readme_section(model: Model) -> list[str]:
    """The README's ``Self-check`` section: the figures, the verdict and what the package returns."""
    check: SelfCheck | None = model.check
    head = ["## Self-check", ""]
    if check is None:
        return [*head, "This model file was written before self-checks existed: nothing was checked.", ""]
    where = "pixels held out from training" if check.held_out else "pixels of the training image"
    lines = [*head, f"At the end of training, on {check.pixels} {where}: {check.line()}.", ""]
    if is_suspect(model):
        lines += [f"**SUSPECT: {check.verdict}.** It was exported anyway (accept_suspect); its output may be wrong "
                  f"and should not be trusted. What to try: {check.advice}.", ""]  # fmt: skip
    elif not check.passed:
        lines += [f"The check failed: {check.verdict}. What to try: {check.advice}.", ""]
    if model.algorithm == "blindspot":
        returned = "The package returns the posterior mean."
        if exported_output(model) == "prior":
            why = "the check found the posterior suspect" if check.fallback else "the check chose it (see above)"
            returned = f"The package returns the prior mean: {why}."
        lines += [returned, ""]
    lines += [
        "napari-selfsup-denoise also checks every image it denoises with this model, and warns or switches to the "
        "prior mean there; a package consumer runs none of these checks.",
        "",
    ]
    return lines
