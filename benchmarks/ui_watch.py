"""The event-loop watch of bench_ui.py: ticks of a 10 ms timer on the main thread, named marks, long gaps.

With ``why`` a watchdog thread samples the main thread's stack during every gap longer than :data:`GAP_S`.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

GAP_S = 0.05


def _where(frame: Any) -> str:
    """The innermost lines of a stack: three of this package (or the outermost caller) and the innermost."""
    if frame is None:
        return "?"
    stack = list(traceback.walk_stack(frame))
    lines = [f"{f.f_code.co_filename.rsplit('/', 2)[-1]}:{n} {f.f_code.co_name}" for f, n in stack]
    ours = [ln for ln, (f, _) in zip(lines, stack) if "napari_selfsup" in f.f_code.co_filename]
    return " < ".join(dict.fromkeys(lines[:2] + ours[:3]))


class Watch:
    """Event-loop ticks on the main thread, and (optionally) what the main thread did during long gaps."""

    def __init__(self, why: bool) -> None:
        from qtpy.QtCore import QTimer

        self.ticks: list[float] = []
        self.cpu: list[float] = []  # the main thread's CPU time at each tick (time.thread_time)
        self.marks: dict[str, float] = {}
        self.mark_cpu: dict[str, float] = {}  # the main thread's CPU time at each mark
        self.stacks: Counter[str] = Counter()
        self.calls: dict[str, list[tuple[float, float]]] = {}
        self._main = threading.main_thread().ident
        self._timer = QTimer()
        self._timer.setInterval(10)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self._done = threading.Event()
        self._me: int | None = None
        if why:
            thread = threading.Thread(target=self._sample, daemon=True)
            thread.start()
            self._me = thread.ident

    def _tick(self) -> None:
        self.ticks.append(time.perf_counter())
        self.cpu.append(time.thread_time())

    def _sample(self) -> None:
        while not self._done.wait(0.01):
            last = self.ticks[-1] if self.ticks else None
            if last is not None and time.perf_counter() - last > GAP_S:
                frames = sys._current_frames()  # noqa: SLF001 (a profiler's job)
                where = [f"main: {_where(frames.get(self._main))}"]
                where += [f"worker: {_where(f)}" for i, f in frames.items() if i not in (self._main, self._me)]
                self.stacks[" | ".join(where)] += 1

    def timed(self, obj: Any, name: str) -> None:
        """Replace the method ``obj.name`` by a wrapper that records its wall and CPU time per call."""
        func = getattr(obj, name)
        calls = self.calls.setdefault(name, [])

        def _wrapper(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                calls.append((time.perf_counter() - t, time.thread_time() - c))

        setattr(obj, name, _wrapper)

    def handler_report(self) -> dict[str, str]:
        """Per wrapped handler: calls, longest wall time, its CPU time."""
        out = {}
        for name, calls in self.calls.items():
            if calls:
                wall, cpu = max(calls)
                out[name] = f"{len(calls)} calls, longest {wall * 1000:.0f} ms wall ({cpu * 1000:.0f} ms CPU)"
        return out

    def gaps(self, n: int = 8) -> list[str]:
        """The ``n`` longest gaps after the dock opened: when (seconds after Train), how long, in which phase.

        Each also says how much of it the main thread spent on a CPU: the rest it waited (for the
        interpreter lock held by another thread, or for a core).
        """
        t0, start = self.marks["train"], self.marks.get("open", self.marks["train"])
        order = sorted(self.marks.items(), key=lambda kv: kv[1])
        found = []
        for i, (a, b) in enumerate(zip(self.ticks, self.ticks[1:])):
            if b - a > GAP_S and a >= start:
                phase = [k for k, v in order if v <= a][-1]
                found.append((b - a, a - t0, phase, self.cpu[i + 1] - self.cpu[i]))
        top = sorted(found, reverse=True)[:n]
        return [f"{g * 1000:.0f} ms at {t:.2f} s (after '{ph}'; main CPU {c * 1000:.0f} ms)" for g, t, ph, c in top]

    def mark(self, name: str) -> None:
        """Remember when ``name`` happened (first time only), and the main thread's CPU time then."""
        if name not in self.marks:
            self.marks[name], self.mark_cpu[name] = time.perf_counter(), time.thread_time()

    def max_gap(self, start: str, end: str) -> float:
        """The longest interval between ticks (including the edges) between two marks."""
        lo, hi = self.marks.get(start), self.marks.get(end)
        if lo is None or hi is None:
            return float("nan")
        inside = [lo] + [t for t in self.ticks if lo < t < hi] + [hi]
        return max(b - a for a, b in zip(inside, inside[1:]))

    def max_gap_cpu(self, start: str, end: str) -> float:
        """The most CPU time the main thread spent between two ticks between two marks (load-independent).

        The edges count as in :meth:`max_gap`: from the first mark to the first tick, and from
        the last tick to the second mark (marks record the main thread's CPU time too).
        """
        lo, hi = self.marks.get(start), self.marks.get(end)
        if lo is None or hi is None:
            return float("nan")
        cpu = [self.mark_cpu[start]] + [c for t, c in zip(self.ticks, self.cpu) if lo < t < hi] + [self.mark_cpu[end]]
        return max(b - a for a, b in zip(cpu, cpu[1:]))

    def stop(self) -> None:
        """Stop sampling."""
        self._done.set()
        self._timer.stop()
