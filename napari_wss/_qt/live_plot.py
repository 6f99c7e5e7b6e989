"""A light live plot drawn with QPainter (a matplotlib redraw costs tens of ms of GUI time).

Four panels: the loss terms over steps; each class's current size against its bounds (a grey bar
from lower to upper bound, a dot for the size); how far each centroid lies outside its box; and
Dice per class when a ground truth is chosen. Data arrive every step; :meth:`LivePlot.add` only
stores them and the owner calls ``update()`` when it repaints the rest of the widget, so one
window composite serves them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

_PART_COLORS = {"loss": "#e5e7eb", "ce": "#60a5fa", "size": "#f59e0b", "centroid": "#a78bfa", "crf": "#34d399"}
_MAX_POINTS = 2000


def _short(value: float) -> str:
    """A tick label of at most ~5 characters: 0.012, 3.4, 812, 12.5k, 3.1M."""
    a = abs(value)
    if a >= 1e6:
        return f"{value / 1e6:.3g}M"
    if a >= 1e4:
        return f"{value / 1e3:.3g}k"
    if a >= 100:
        return f"{value:.0f}"
    if a < 1e-3:
        return "0" if a == 0 else f"{value:.0e}"
    return f"{value:.3g}"


def _inner(rect: QRectF) -> QRectF:
    """A panel's plotting area: room for the title above, tick labels left and names below."""
    return rect.adjusted(40, 18, -8, -16)


class LivePlot(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setMinimumHeight(260)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        # Opaque: Qt need not repaint the dock and the window behind the plot on every update.
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.reset(["background", "class 1"], ["#888888", "#ff0000"], "px")

    def reset(self, names: Sequence[str], colors: Sequence[str], unit: str) -> None:
        self._names = list(names)
        self._colors = [QColor(c) for c in colors]
        self._unit = unit
        self._steps: list[int] = []
        self._parts: dict[str, list[float]] = {}
        self._cent: list[np.ndarray] = []
        self._dice_steps: list[int] = []
        self._dice: list[np.ndarray] = []
        self._sizes: np.ndarray | None = None
        self._bounds: np.ndarray | None = None
        self.volume_curves: tuple[np.ndarray, int | None, int | None] | None = None
        self.update()

    def show_volumes(
        self, ml: np.ndarray, ed: int | None, es: int | None, names: Sequence[str], colors: Sequence[str]
    ) -> None:
        """Show a cine's class volumes frame by frame ``(T, K)`` in mL, end-diastole and end-systole
        marked, in place of the training panels until the next :meth:`reset` (a new Train)."""
        self._names = list(names)
        self._colors = [QColor(c) for c in colors]
        self.volume_curves = (np.asarray(ml, dtype=float), ed, es)
        self.update()

    def set_colors(self, colors: Sequence[str]) -> None:
        self._colors = [QColor(c) for c in colors]
        self.update()

    def add(
        self,
        step: int,
        parts: dict[str, float],
        sizes: np.ndarray,
        bounds: np.ndarray,
        centroid_violation: np.ndarray,
        dice: np.ndarray | None = None,
    ) -> None:
        """One step: loss terms, sizes and bounds (K,) / (K, 2) in the table's unit, violations (K,)."""
        self._steps.append(step)
        for name, value in parts.items():
            series = self._parts.setdefault(name, [math.nan] * (len(self._steps) - 1))
            series.append(float(value))
        for series in self._parts.values():
            if len(series) < len(self._steps):
                series.append(math.nan)
        self._cent.append(np.asarray(centroid_violation, dtype=float))
        self._sizes, self._bounds = np.asarray(sizes, dtype=float), np.asarray(bounds, dtype=float)
        if dice is not None:
            self._dice_steps.append(step)
            self._dice.append(np.asarray(dice, dtype=float))
        if len(self._steps) > _MAX_POINTS:  # keep every other point: the shape stays, the cost bounded
            self._steps = self._steps[::2]
            self._parts = {k: v[::2] for k, v in self._parts.items()}
            self._cent = self._cent[::2]
        if len(self._dice_steps) > _MAX_POINTS:  # previews arrive on a clock: bound them as well
            self._dice_steps = self._dice_steps[::2]
            self._dice = self._dice[::2]

    # ---------------------------------------------------------------- painting
    def paintEvent(self, _event: object) -> None:
        p = QPainter(self)  # no antialiasing: a few ms instead of tens under software rendering
        p.fillRect(self.rect(), self.palette().color(self.backgroundRole()))
        font = QFont(p.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        p.setFont(font)
        w, h = self.width(), self.height()
        if self.volume_curves is not None:
            self._volume_panel(p, QRectF(0, 0, w, h))
            p.end()
            return
        half_w, half_h = w / 2, h / 2
        panels = [QRectF(0, 0, half_w, half_h), QRectF(half_w, 0, half_w, half_h)]
        panels += [QRectF(0, half_h, half_w, half_h), QRectF(half_w, half_h, half_w, half_h)]
        steps = np.asarray(self._steps, dtype=float)
        series = {k: np.asarray(v, dtype=float) for k, v in self._parts.items()}
        self._lines(
            p, panels[0], "loss terms", steps, series, {k: QColor(_PART_COLORS.get(k, "#f472b6")) for k in series}
        )
        self._size_panel(p, panels[1])
        cent = np.stack(self._cent) if self._cent else np.zeros((0, len(self._names)))
        fg = range(1, len(self._names))
        self._lines(
            p,
            panels[2],
            "centroid outside box (px)",
            steps,
            {self._names[c]: cent[:, c] for c in fg if c < cent.shape[1]},
            {self._names[c]: self._color(c) for c in fg},
        )
        dice = np.stack(self._dice) if self._dice else np.zeros((0, len(self._names)))
        self._lines(
            p,
            panels[3],
            "Dice (pick a ground truth)" if not self._dice else "Dice per class",
            np.asarray(self._dice_steps, dtype=float),
            {self._names[c]: dice[:, c] for c in fg if c < dice.shape[1]},
            {self._names[c]: self._color(c) for c in fg},
            fixed=(0.0, 1.0),
        )
        p.end()

    def _color(self, c: int) -> QColor:
        return self._colors[c] if c < len(self._colors) else QColor("#cccccc")

    def _frame(self, p: QPainter, rect: QRectF, title: str) -> QRectF:
        p.setPen(QPen(QColor("#9ca3af")))
        p.drawText(rect.adjusted(4, 2, -4, 0), Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop, title)
        inner = _inner(rect)
        p.setPen(QPen(QColor("#4b5563")))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(inner)
        return inner

    def _axis_labels(self, p: QPainter, inner: QRectF, lo: float, hi: float) -> None:
        p.setPen(QPen(QColor("#9ca3af")))
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        p.drawText(QRectF(inner.left() - 40, inner.top() - 6, 37, 12), right, _short(hi))
        p.drawText(QRectF(inner.left() - 40, inner.bottom() - 6, 37, 12), right, _short(lo))

    def _lines(
        self,
        p: QPainter,
        rect: QRectF,
        title: str,
        x: np.ndarray,
        series: dict[str, np.ndarray],
        colors: dict[str, QColor],
        fixed: tuple[float, float] | None = None,
    ) -> None:
        inner = self._frame(p, rect, title)
        finite = [v[np.isfinite(v)] for v in series.values() if len(v)]
        finite = [v for v in finite if v.size]
        if len(x) == 0 or not finite:
            return
        lo, hi = fixed if fixed is not None else (min(v.min() for v in finite), max(v.max() for v in finite))
        if hi - lo < 1e-12:
            lo, hi = lo - 0.5, hi + 0.5
        x0, x1 = float(x[0]), float(max(x[-1], x[0] + 1))
        self._axis_labels(p, inner, lo, hi)
        legend_y = inner.top() + 2
        stride = max(1, len(x) // max(int(inner.width()), 1))  # about one point per pixel column
        px = inner.left() + (x[::stride] - x0) / (x1 - x0) * inner.width()
        for name, values in series.items():
            py = inner.bottom() - (np.clip(values[::stride], lo, hi) - lo) / (hi - lo) * inner.height()
            pen = QPen(colors.get(name, QColor("#cccccc")))
            pen.setWidth(1)
            p.setPen(pen)
            finite = np.isfinite(py)
            # One polyline per run of finite values (NaN = a term missing at that step).
            breaks = np.flatnonzero(np.diff(finite.astype(np.int8)) != 0) + 1
            for run in np.split(np.arange(len(py)), breaks):
                if len(run) > 1 and finite[run[0]]:
                    p.drawPolyline(QPolygonF([QPointF(float(a), float(b)) for a, b in zip(px[run], py[run])]))
            p.drawText(QRectF(inner.right() - 90, legend_y, 86, 12), Qt.AlignmentFlag.AlignRight, name)
            legend_y += 12

    def _size_panel(self, p: QPainter, rect: QRectF) -> None:
        inner = self._frame(p, rect, f"size vs bounds ({self._unit})")
        if self._sizes is None or self._bounds is None:
            return
        k = len(self._sizes)
        fg = list(range(1, k))
        if not fg:
            return
        values = [self._sizes[c] for c in fg] + [b for c in fg for b in self._bounds[c] if math.isfinite(b)]
        hi = max(max(values), 1e-9) * 1.1
        self._axis_labels(p, inner, 0.0, hi)
        slot = inner.width() / len(fg)

        def y(v: float) -> float:
            return inner.bottom() - min(max(v, 0.0), hi) / hi * inner.height()

        for i, c in enumerate(fg):
            cx = inner.left() + (i + 0.5) * slot
            lo_b, hi_b = self._bounds[c]
            if math.isfinite(lo_b) or math.isfinite(hi_b):
                top = y(hi_b if math.isfinite(hi_b) else hi)
                bottom = y(lo_b if math.isfinite(lo_b) else 0.0)
                p.fillRect(QRectF(cx - slot * 0.2, top, slot * 0.4, max(bottom - top, 1.0)), QColor(156, 163, 175, 90))
            color = self._color(c)
            p.setPen(QPen(color))
            p.setBrush(color)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.drawEllipse(QPointF(cx, y(self._sizes[c])), 4.0, 4.0)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            p.setPen(QPen(QColor("#9ca3af")))
            name = self._names[c] if c < len(self._names) else str(c)
            p.drawText(QRectF(cx - slot / 2, inner.bottom() + 1, slot, 14), Qt.AlignmentFlag.AlignHCenter, name)

    def _volume_panel(self, p: QPainter, rect: QRectF) -> None:
        assert self.volume_curves is not None
        ml, ed, es = self.volume_curves
        frames = np.arange(len(ml), dtype=float)
        fg = [c for c in range(1, ml.shape[1]) if c < len(self._names)]
        self._lines(
            p,
            rect,
            "volume per frame (mL)",
            frames,
            {self._names[c]: ml[:, c] for c in fg},
            {self._names[c]: self._color(c) for c in fg},
        )
        inner = _inner(rect)
        span = max(len(ml) - 1, 1)
        for frame, tag in ((ed, "ED"), (es, "ES")):
            if frame is None:
                continue
            x = inner.left() + frame / span * inner.width()
            p.setPen(QPen(QColor("#9ca3af"), 1, Qt.PenStyle.DashLine))
            p.drawLine(QPointF(x, inner.top()), QPointF(x, inner.bottom()))
            p.drawText(QRectF(x - 30, inner.bottom() + 1, 60, 14), Qt.AlignmentFlag.AlignHCenter, f"{tag} {frame}")
