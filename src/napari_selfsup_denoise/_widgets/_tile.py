"""The prediction tile box: "auto" (0) or at least the tile the command line accepts (issue 10, item 15)."""

from __future__ import annotations

from qtpy.QtWidgets import QSpinBox, QWidget

from ..config import MIN_TILE

MAX_TILE = 8192


class TileBox(QSpinBox):
    """A spin box for the tile: 0 shows "auto" (chosen from free memory); any other value is >= ``MIN_TILE``.

    A value from 1 to ``MIN_TILE - 1`` (typed or set) becomes ``MIN_TILE``; stepping down from ``MIN_TILE``
    gives "auto", stepping up from "auto" gives ``MIN_TILE``. Smaller tiles run many times slower.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setRange(0, MAX_TILE)
        self.setSpecialValueText("auto")
        self.setKeyboardTracking(False)  # judge a typed number when it is complete, not digit by digit
        self.setToolTip(f"auto, or at least {MIN_TILE} pixels: smaller tiles recompute the model's margin too often")
        self.valueChanged.connect(self._snap)

    def _snap(self, value: int) -> None:
        if 0 < value < MIN_TILE:
            self.setValue(MIN_TILE)

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt's name)
        """Step as usual, but over the refused sizes: between "auto" and ``MIN_TILE`` in one step."""
        target = self.value() + steps * self.singleStep()
        if 0 < target < MIN_TILE:
            target = MIN_TILE if steps > 0 else 0
        self.setValue(target)
