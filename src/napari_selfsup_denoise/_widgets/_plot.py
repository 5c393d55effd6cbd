"""A small loss curve painted with QPainter (no plotting dependency, cheap to update)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

MAX_POINTS = 600
_TRAIN, _SMOOTH, _VAL = QColor(120, 160, 220, 110), QColor(80, 150, 255), QColor(255, 150, 60)


def clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on (elapsed time and ETA in the status line)."""
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class LossPlot(QWidget):
    """Training loss (raw and smoothed) and validation loss against the step.

    The y axis is logarithmic while every value is positive (MSE losses) and
    linear otherwise (the blind-spot negative log-likelihood can go below zero).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.smooth: list[float] = []
        self.val: list[tuple[int, float]] = []
        self.setMinimumHeight(140)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setToolTip("Training loss (blue, smoothed) and validation loss (orange)")

    def clear(self) -> None:
        """Forget every point."""
        self.steps, self.losses, self.smooth, self.val = [], [], [], []
        self.update()

    def add(self, step: int, loss: float, val_loss: float | None = None) -> None:
        """Append one step (non-finite losses are skipped)."""
        if math.isfinite(loss):
            prev = self.smooth[-1] if self.smooth else loss
            self.steps.append(step)
            self.losses.append(loss)
            self.smooth.append(0.95 * prev + 0.05 * loss if len(self.smooth) > 10 else loss)
        if val_loss is not None and math.isfinite(val_loss) and (not self.val or self.val[-1][1] != val_loss):
            self.val.append((step, val_loss))
        self.update()

    def _scale(self) -> tuple[bool, float, float]:
        values = self.losses + [v for _, v in self.val]
        log = min(values) > 0
        tv = [math.log10(v) for v in values] if log else values
        lo, hi = min(tv), max(tv)
        return log, lo, (hi if hi > lo else lo + 1e-6)

    def _mapper(self, rect: QRectF) -> tuple[object, bool, float, float]:
        log, lo, hi = self._scale()
        last = max(self.steps[-1] if self.steps else 1, self.val[-1][0] if self.val else 1, 1)

        def to_px(step: float, v: float) -> QPointF:
            y = (math.log10(v) if log else v) - lo
            return QPointF(rect.left() + rect.width() * step / last, rect.bottom() - rect.height() * y / (hi - lo))

        return to_px, log, lo, hi

    def _curve(self, painter: QPainter, to_px: object, xs: list[int], ys: list[float], color: QColor) -> None:
        stride = max(1, len(xs) // MAX_POINTS)
        pts = [to_px(x, y) for x, y in zip(xs[::stride], ys[::stride])]  # type: ignore[operator]
        painter.setPen(QPen(color, 1.5))
        painter.drawPolyline(QPolygonF(pts))

    def paintEvent(self, event: QPaintEvent | None) -> None:  # noqa: N802 (Qt name)
        """Draw the frame, the curves and the value range."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fg = self.palette().color(self.foregroundRole())
        rect = QRectF(self.rect()).adjusted(46, 18, -8, -18)
        painter.setPen(QPen(fg, 1))
        painter.drawRect(rect)
        if not self.steps:
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "loss curve appears when training starts")
            return
        to_px, log, lo, hi = self._mapper(rect)
        self._curve(painter, to_px, self.steps, self.losses, _TRAIN)
        self._curve(painter, to_px, self.steps, self.smooth, _SMOOTH)
        if self.val:
            self._curve(painter, to_px, [s for s, _ in self.val], [v for _, v in self.val], _VAL)
            painter.setBrush(_VAL)
            for s, v in self.val[-MAX_POINTS:]:
                painter.drawEllipse(to_px(s, v), 2.5, 2.5)  # type: ignore[operator]
        painter.setPen(QPen(fg, 1))
        top, bottom = (10**hi, 10**lo) if log else (hi, lo)
        painter.drawText(QPointF(2, rect.top() + 10), f"{top:.3g}")
        painter.drawText(QPointF(2, rect.bottom()), f"{bottom:.3g}")
        painter.drawText(QPointF(rect.right() - 90, rect.bottom() + 14), f"step {self.steps[-1]}")
        legend = "loss (log)" if log else "loss"
        painter.drawText(QPointF(rect.left() + 4, rect.top() - 4), legend)
        painter.setPen(QPen(_VAL, 1))
        painter.drawText(QPointF(rect.left() + 80, rect.top() - 4), "validation")
