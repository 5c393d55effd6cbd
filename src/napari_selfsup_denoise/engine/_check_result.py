"""What a self-check found: its figures with their ranges, the verdict, and the output choice (plain data)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._check_choice import OutputChoice
from .check_ranges import RANGES


@dataclass(frozen=True)
class Figure:
    """One figure of a self-check and the range a good result stays in."""

    name: str
    value: float
    low: float
    high: float
    part: str

    @property
    def passed(self) -> bool:
        """Whether the value is inside its range (NaN fails)."""
        return bool(self.low <= self.value <= self.high)


@dataclass(frozen=True)
class SelfCheck:
    """The outcome of a self-check.

    Attributes
    ----------
    figures : tuple of Figure
        Every figure with its range.
    stage : str
        ``training`` (held-out pixels of the training image) or ``image`` (a model applied to an image).
    pixels : int
        Pixels the figures were computed on.
    held_out : bool
        Whether those pixels were unseen in training.
    suspect : str
        ``""`` (passed), ``posterior`` (the noise model's part), ``model`` (the network's mean) or ``input``.
    fallback : str
        The safer output to return instead (``prior``), or ``""``.
    verdict, advice : str
        One plain sentence on what was found, and what to try.
    choice : OutputChoice or None
        Blind-spot models: the estimated error of the posterior and the prior mean, and the one returned.
    """

    figures: tuple[Figure, ...]
    stage: str
    pixels: int
    held_out: bool
    suspect: str
    fallback: str
    verdict: str
    advice: str
    choice: OutputChoice | None = None

    @property
    def passed(self) -> bool:
        """True when nothing is suspect."""
        return self.suspect == ""

    def line(self) -> str:
        """A short status line: the verdict word and the figures."""
        vals = ", ".join(f"{f.name} {f.value:.2f}{'' if f.passed else '!'}" for f in self.figures)
        text = f"self-check {'passed' if self.passed else 'FAILED'} ({vals})"
        return text + (f"; {self.choice.phrase()}" if self.choice is not None and not self.fallback else "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the model's summary)."""
        return {
            "passed": self.passed,
            "stage": self.stage,
            "pixels": self.pixels,
            "held_out": self.held_out,
            "suspect": self.suspect,
            "fallback": self.fallback,
            "verdict": self.verdict,
            "advice": self.advice,
            "figures": {f.name: round(f.value, 4) if math.isfinite(f.value) else None for f in self.figures},
            **({"choice": self.choice.to_dict()} if self.choice is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SelfCheck:
        """Inverse of :meth:`to_dict` (ranges are today's)."""
        figures = tuple(figure(k, math.nan if v is None else float(v)) for k, v in d.get("figures", {}).items())
        choice = OutputChoice.from_dict(d["choice"]) if d.get("choice") else None
        return cls(figures, str(d.get("stage", "training")), int(d.get("pixels", 0)), bool(d.get("held_out")),
                   str(d.get("suspect", "")), str(d.get("fallback", "")), str(d.get("verdict", "")),
                   str(d.get("advice", "")), choice)  # fmt: skip


def figure(name: str, value: float) -> Figure:
    """The figure ``name`` with today's range for it (no range: an ``info`` figure that always passes)."""
    low, high, part = RANGES.get(name, (-math.inf, math.inf, "info"))
    return Figure(name, float(value), low, high, part)


def check_record(decision: Any, suspect: str, fell_back: str) -> dict[str, Any]:
    """What an output keeps of the self-checks that made it: status, output, failures, each check's figures.

    ``decision`` is a :class:`.checks.Decision`; ``suspect`` and ``fell_back`` are the status words an interface
    uses for a suspect result and for the prior mean returned in place of a suspect posterior.
    """
    status = suspect if decision.suspect else "passed"
    if decision.fell_back and not decision.suspect:
        status = fell_back
    lines = [f"{c.stage}: {c.line()}" for c in (decision.trained, decision.image) if c is not None]
    return {"status": status, "output": decision.output, "messages": decision.notes(), "figures": lines}
