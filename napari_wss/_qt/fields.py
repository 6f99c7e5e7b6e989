"""Number fields that show what they hold (Qt's spin boxes round 1e-3 to 0.00 at 2 decimals)."""

from __future__ import annotations

import math

from qtpy.QtGui import QValidator
from qtpy.QtWidgets import QDoubleSpinBox


class FloatField(QDoubleSpinBox):
    """A spin box for floats of any magnitude: shown with up to 6 significant digits (``1e-05``).

    The arrows multiply/divide by ``factor`` when it is set (learning rates, weights), else step
    by ``single_step``.
    """

    def __init__(
        self,
        value: float,
        *,
        minimum: float = 0.0,
        maximum: float = 1e6,
        factor: float | None = None,
        single_step: float = 0.1,
        tooltip: str = "",
    ) -> None:
        super().__init__()
        self.setDecimals(12)  # storage precision; display goes through textFromValue
        self.setRange(minimum, maximum)
        self.setSingleStep(single_step)
        self.setKeyboardTracking(False)
        self._factor = factor
        self.setValue(value)
        if tooltip:
            self.setToolTip(tooltip)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            partial = stripped in ("", "-", "+", ".") or stripped.lower().endswith(("e", "e-", "e+"))
            state = QValidator.State.Intermediate if partial else QValidator.State.Invalid
            return state, text, pos
        if math.isfinite(value) and self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos

    def stepBy(self, steps: int) -> None:
        if self._factor is None or self.value() <= 0:
            super().stepBy(steps)
            return
        self.setValue(min(max(self.value() * self._factor**steps, self.minimum()), self.maximum()))
