"""tqdm progress bars for training steps and for batch denoising (a bar per file plus an overall bar)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..batch import Reporter, Result


class TrainBar:
    """Draws :class:`TrainProgress` events: step of total, loss, validation loss, steps/s."""

    def __init__(self, disable: bool) -> None:
        self.bar = tqdm(total=None, desc="training", unit="step", disable=disable, file=sys.stderr, dynamic_ncols=True)

    def __call__(self, ev: Any) -> None:
        if self.bar.total != ev.total:
            self.bar.total = ev.total
        self.bar.update(ev.step - self.bar.n)
        post = {"loss": f"{ev.loss:.4g}"}
        if ev.val_loss is not None:
            post["val"] = f"{ev.val_loss:.4g}"
        self.bar.set_postfix(post, refresh=False)

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()


class BarReporter(Reporter):
    """An overall bar over files (with megapixels done) and a bar per file in megapixels."""

    def __init__(self, n_files: int, disable: bool) -> None:
        self.disable = disable
        self.overall = tqdm(total=n_files, desc="files", unit="file", position=0, disable=disable, file=sys.stderr)
        self.bar: tqdm | None = None
        self.mp = 0.0
        self.failed = 0

    def file_start(self, src: str, total_px: int, done_px: int) -> None:
        """Open the file's bar (starting at what a resumed run already has)."""
        self.bar = tqdm(
            total=total_px / 1e6,
            initial=done_px / 1e6,
            desc=Path(src).name[:30],
            unit="MP",
            position=1,
            leave=False,
            disable=self.disable,
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} MP [{elapsed}<{remaining}, {rate_fmt}]",
        )

    def file_advance(self, px: int) -> None:
        """Advance the file's bar."""
        if self.bar is not None:
            self.bar.update(px / 1e6)

    def file_end(self, result: Result) -> None:
        """Close the file's bar, count the file, report failures as they happen."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.mp += result.megapixels
        self.failed += result.status == "failed"
        if self.overall.total is not None and self.overall.n >= self.overall.total:
            self.overall.total += 1
        self.overall.update(1)
        self.overall.set_postfix({"MP": f"{self.mp:.1f}", "failed": self.failed})
        if result.status == "failed":
            tqdm.write(f"failed: {result.src}: {result.reason}", file=sys.stderr)

    def close(self) -> None:
        """Finish the bars."""
        if self.bar is not None:
            self.bar.close()
        self.overall.close()


def summary(results: list[Result]) -> str:
    """The end-of-run summary: counts, then one line per failure with its reason."""
    count = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed", "suspect")}
    mp = sum(r.megapixels for r in results if r.status == "done")
    secs = sum(r.seconds for r in results)
    rate = f", {mp / secs:.2f} MP/s" if secs > 0 and mp > 0 else ""
    head = f"{count['done']} done, {count['skipped']} skipped, {count['failed']} failed"
    head += f", {count['suspect']} suspect (not written)" if count["suspect"] else ""
    lines = [f"{head} ({mp:.2f} MP in {secs:.1f} s{rate})"]
    lines += [f"  warning {r.src}: {note}" for r in results if r.status == "done" for note in r.notes]
    lines += [f"  SUSPECT {r.src}: {r.reason}" for r in results if r.status == "suspect"]
    lines += [f"  skipped {r.src}: {r.reason}" for r in results if r.status == "skipped"]
    lines += [f"  FAILED  {r.src}: {r.reason}" for r in results if r.status == "failed"]
    return "\n".join(lines)
