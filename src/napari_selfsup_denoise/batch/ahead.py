"""The self-check of an input run beside its first work units instead of before them.

The self-check (:func:`engine.checks.decide`) reads and predicts a few crops of
the input, which takes a fixed time per file during which nothing else runs. When
its verdict cannot change what the units compute (an N2V-family model ignores
the output asked for) and the output is created afresh, the units start at once
with the expected output while the check runs in a thread. Once the verdict is
known, a run it would have refused (a suspect result without ``accept_suspect``,
another output, an error) is stopped within a unit and its output removed, so it
ends as a run that waited for the check would: nothing written, or the run redone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..engine.checks import Decision


class Retracted(RuntimeError):
    """The self-check, finished while units ran, refuses the run they belong to."""


class CheckAhead:
    """Run ``decide()`` in a thread; :meth:`verdict` says whether a run computing ``output`` stands.

    Parameters
    ----------
    decide : callable
        The self-check, returning a :class:`Decision` (or raising).
    output : str
        The output the units compute meanwhile (``posterior`` or ``prior``).
    accept_suspect : bool
        Whether a suspect result may be written.
    """

    def __init__(self, decide: Callable[[], Decision], output: str, accept_suspect: bool) -> None:
        self.output, self.accept_suspect = output, accept_suspect
        self._decision: Decision | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(decide,), name="selfsup-check", daemon=True)
        self._thread.start()

    def _run(self, decide: Callable[[], Decision]) -> None:
        try:
            self._decision = decide()
        except BaseException as exc:  # raised by decision() in the caller's thread
            self._error = exc

    def done(self) -> bool:
        """Whether the check has finished."""
        return not self._thread.is_alive()

    def decision(self) -> Decision:
        """Wait for the check; its decision, or the exception it raised."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._decision is not None
        return self._decision

    def stands(self) -> bool:
        """Wait for the check; whether the run goes on: its output is the one computed, and not refused as suspect.

        An error of the check counts as a refusal (:meth:`decision` raises it).
        """
        self._thread.join()
        d = self._decision
        return d is not None and d.output == self.output and not (d.suspect and not self.accept_suspect)

    def interrupt_if_refused(self) -> None:
        """Between units: raise :class:`Retracted` if the check has finished and refuses the run."""
        if self.done() and not self.stands():
            raise Retracted("the self-check refuses this run")


def expected_output(prior: bool) -> str:
    """The output a run computes while its check is running: the one asked for."""
    return "prior" if prior else "posterior"


def can_check_ahead(model: Any, local: bool, fresh: bool) -> bool:
    """Whether the check may run beside the units: a local run into outputs created afresh, with a model whose
    units do not depend on the output asked for (not the blind-spot method, which computes the prior or the
    posterior)."""
    return local and fresh and getattr(model, "algorithm", "blindspot") != "blindspot"
