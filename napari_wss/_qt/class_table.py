"""The class table: names, colours, size bounds, centroid boxes and "absent on this slice".

Sizes are typed in mm² when the image has a pixel spacing, else in pixels; centroid boxes are four
numbers in image pixels: ``row from, row to, column from, column to``. An empty cell means no
bound. "Absent" marks the class absent on the slice the viewer shows (it is remembered per
slice); it is half-ticked where the slice's strokes already make the class absent (strokes of
other classes, none of this one). Reading the table (:meth:`ClassTable.priors`) validates it and raises
:class:`~napari_wss.errors.InputError` naming the class and the cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QColorDialog, QHeaderView, QPushButton, QTableWidget, QTableWidgetItem

from napari_wss import _layers
from napari_wss.config import DEFAULT_CLASS_NAMES, ClassPrior
from napari_wss.errors import InputError

NAME, COLOR, SIZE_LO, SIZE_HI, CENTROID, ABSENT = range(6)
INFERRED_TIP = (
    "Half-ticked: this slice has strokes but none of this class, so training and Predict volume take it as "
    "absent here; paint a stroke of it on this slice if it is there"
)
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _fmt(value: float) -> str:
    return f"{value:.6g}"


class ClassTable(QTableWidget):
    """One row per class; row ``c`` is painted with label ``c + 1`` on the scribble layer."""

    changed = Signal()  # names, bounds or absent flags edited
    colors_changed = Signal()
    class_selected = Signal(int)

    def __init__(self, names: Sequence[str] = DEFAULT_CLASS_NAMES) -> None:
        super().__init__(0, 6)
        self._unit = "px"
        self._colors: list[str] = []
        self._absent: set[tuple[int, int]] = set()
        self._inferred: set[int] = set()  # rows the strokes on the shown slice make absent there
        self._slice = 0
        self._loading = False
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        for col, width in ((COLOR, 44), (SIZE_LO, 64), (SIZE_HI, 64), (CENTROID, 100), (ABSENT, 50)):
            header.resizeSection(col, width)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(36)
        self.itemChanged.connect(self._on_item_changed)
        self.itemSelectionChanged.connect(self._on_selection)
        self.set_unit("px")
        self.set_classes(names)

    # ---------------------------------------------------------------- structure
    def set_unit(self, unit: str) -> None:
        self._unit = unit
        self.setHorizontalHeaderLabels(["Class", "Colour", f"Min {unit}", f"Max {unit}", "Centroid box", "Absent"])
        tips = {
            SIZE_LO: f"Smallest area of the class on a slice, in {unit}; empty = no lower bound",
            SIZE_HI: f"Largest area of the class on a slice, in {unit}; empty = no upper bound",
            CENTROID: "Where the class's centre may lie, in image pixels: row from, row to, column from, column to "
            "(e.g. 40, 80, 30, 70); or select the row and use 'Box from rectangle'",
            ABSENT: "Absent here: the class is not on the slice shown in the viewer (half-ticked: the slice has "
            "strokes but none of this class, so training takes it as absent there)",
        }
        for col, tip in tips.items():
            item = self.horizontalHeaderItem(col)
            if item is not None:
                item.setToolTip(tip)

    @property
    def unit(self) -> str:
        return self._unit

    def set_classes(
        self,
        names: Sequence[str],
        colors: Sequence[str] | None = None,
        priors: Sequence[ClassPrior] | None = None,
        *,
        scale: float = 1.0,
    ) -> None:
        """Replace all rows; ``priors`` are in source pixels, shown × ``scale`` (mm² per pixel, or 1)."""
        self._loading = True
        try:
            self.setRowCount(0)
            self._colors = []
            self._absent.clear()
            self._inferred.clear()
            for i, name in enumerate(names):
                self._append(name, colors[i] if colors and i < len(colors) else _layers.class_color(i))
        finally:
            self._loading = False
        if priors is not None:
            for row, prior in enumerate(priors[: self.rowCount()]):
                self.set_bounds(row, prior.size, prior.centroid, scale=scale)
        self.colors_changed.emit()
        self.changed.emit()

    def _append(self, name: str, color: str) -> None:
        row = self.rowCount()
        self.insertRow(row)
        self._colors.append(color)
        self.setItem(row, NAME, QTableWidgetItem(name))
        button = QPushButton()
        button.setToolTip("Choose the colour of this class")
        button.clicked.connect(lambda _=False, b=button: self._pick_color(b))
        self.setCellWidget(row, COLOR, button)
        self._paint_button(row)
        for col in (SIZE_LO, SIZE_HI, CENTROID):
            self.setItem(row, col, QTableWidgetItem(""))
        absent = QTableWidgetItem()
        absent.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        absent.setCheckState(Qt.CheckState.Unchecked)
        self.setItem(row, ABSENT, absent)

    def add_class(self, name: str | None = None) -> int:
        row = self.rowCount()
        self._loading = True
        try:
            self._append(name or f"class {row}", _layers.class_color(row))
        finally:
            self._loading = False
        self.colors_changed.emit()
        self.changed.emit()
        return row

    def remove_class(self, row: int | None = None) -> None:
        row = self.currentRow() if row is None else row
        if row < 0:
            row = self.rowCount() - 1
        if self.rowCount() <= 2:
            raise InputError("at least two classes are needed (background and one structure)")
        self.removeRow(row)
        del self._colors[row]
        self._inferred = {c if c < row else c - 1 for c in self._inferred if c != row}
        self._absent = {(z, c if c < row else c - 1) for z, c in self._absent if c != row}
        for r in range(self.rowCount()):
            self._paint_button(r)
        self.colors_changed.emit()
        self.changed.emit()

    # ---------------------------------------------------------------- colours
    def colors(self) -> list[str]:
        return list(self._colors)

    def set_color(self, row: int, color: str) -> None:
        self._colors[row] = QColor(color).name()
        self._paint_button(row)
        self.colors_changed.emit()

    def _paint_button(self, row: int) -> None:
        button = self.cellWidget(row, COLOR)
        if button is not None:
            button.setStyleSheet(f"background-color: {self._colors[row]}; border: 1px solid #444;")
            button.setProperty("row", row)

    def _pick_color(self, button: QPushButton) -> None:
        row = int(button.property("row"))
        color = QColorDialog.getColor(QColor(self._colors[row]), self, f"Colour of {self.names()[row]}")
        if color.isValid():
            self.set_color(row, color.name())

    # ---------------------------------------------------------------- reading
    def names(self) -> list[str]:
        return [(self.item(r, NAME).text() if self.item(r, NAME) else "").strip() for r in range(self.rowCount())]

    def _number(self, row: int, col: int, what: str) -> float | None:
        text = (self.item(row, col).text() if self.item(row, col) else "").strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            raise InputError(f"{what} of '{self.names()[row]}' must be a number, got '{text}'") from None

    def size_bounds(self, row: int) -> tuple[float, float] | None:
        """The typed size bounds in the table's unit (a missing side becomes 0 or unbounded)."""
        lo = self._number(row, SIZE_LO, "the minimum size")
        hi = self._number(row, SIZE_HI, "the maximum size")
        if lo is None and hi is None:
            return None
        return (0.0 if lo is None else lo, float("inf") if hi is None else hi)

    def centroid_box(self, row: int) -> tuple[tuple[float, float], tuple[float, float]] | None:
        text = (self.item(row, CENTROID).text() if self.item(row, CENTROID) else "").strip()
        if not text:
            return None
        numbers = [float(n) for n in _NUMBER.findall(text)]
        if len(numbers) != 4:
            raise InputError(
                f"the centroid box of '{self.names()[row]}' needs four numbers (row from, row to, column from, "
                f"column to), got '{text}'"
            )
        r0, r1, c0, c1 = numbers
        return (r0, r1), (c0, c1)

    def priors(self, spacing_yx: tuple[float, float] | None = None) -> list[ClassPrior]:
        """The table as validated priors in source pixels (sizes converted from mm² with ``spacing_yx``)."""
        out = []
        area = 1.0 if spacing_yx is None else float(spacing_yx[0]) * float(spacing_yx[1])
        for row, name in enumerate(self.names()):
            if not name:
                raise InputError(f"class {row} has no name: type one in the table")
            size = self.size_bounds(row)
            if size is not None and size[0] > size[1]:
                raise InputError(f"size bounds for '{name}': lower {size[0]:g} > upper {size[1]:g} {self._unit}")
            if size is not None and size[1] == float("inf"):
                size = (size[0], 1e12)  # "no upper bound": larger than any slice
            px = None if size is None else (size[0] / area, size[1] / area)
            out.append(ClassPrior(name, px, self.centroid_box(row), self._colors[row]))
        names = [p.name for p in out]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"class names must be unique, repeated: {', '.join(dupes)}")
        return out

    # ---------------------------------------------------------------- writing bounds
    def set_bounds(
        self,
        row: int,
        size: tuple[float, float] | None,
        centroid: tuple[tuple[float, float], tuple[float, float]] | None,
        *,
        scale: float,
    ) -> None:
        """Fill a row; ``size`` in source pixels is multiplied by ``scale`` (mm² per pixel, or 1)."""
        self._loading = True
        try:
            self.item(row, SIZE_LO).setText("" if size is None else _fmt(size[0] * scale))
            self.item(row, SIZE_HI).setText("" if size is None or size[1] >= 1e11 else _fmt(size[1] * scale))
            self.set_centroid_text(row, centroid)
        finally:
            self._loading = False

    def set_sizes(self, ranges: dict[int, tuple[float, float]]) -> None:
        """Type ``{row: (min, max)}`` (in the table's unit) into the size cells; one ``changed``."""
        self._loading = True
        try:
            for row, (lo, hi) in ranges.items():
                self.item(row, SIZE_LO).setText(_fmt(lo))
                self.item(row, SIZE_HI).setText(_fmt(hi))
        finally:
            self._loading = False
        self.changed.emit()

    def set_centroid_text(self, row: int, centroid: tuple[tuple[float, float], tuple[float, float]] | None) -> None:
        text = "" if centroid is None else ", ".join(_fmt(v) for v in (*centroid[0], *centroid[1]))
        self.item(row, CENTROID).setText(text)

    def set_cell(self, row: int, col: int, text: str) -> None:
        """Type into a cell as a user would (emits ``changed``)."""
        self.item(row, col).setText(text)

    # ---------------------------------------------------------------- absent on a slice
    def absent_pairs(self) -> list[tuple[int, int]]:
        return sorted(self._absent)

    def set_absent_pairs(self, pairs: Sequence[tuple[int, int]]) -> None:
        self._absent = {(int(z), int(c)) for z, c in pairs if 0 <= int(c) < self.rowCount()}
        self.set_current_slice(self._slice)
        self.changed.emit()

    def set_current_slice(self, z: int) -> None:
        self._slice = int(z)
        self._show_absent()

    def set_inferred_absent(self, rows: Iterable[int]) -> None:
        """Half-tick the rows the strokes on the shown slice make absent there (a slice with strokes
        but none of the class: training and Predict volume take it as absent); no ``changed``."""
        self._inferred = {int(r) for r in rows if 0 <= int(r) < self.rowCount()}
        self._show_absent()

    def inferred_absent(self) -> list[int]:
        return sorted(self._inferred)

    def _show_absent(self) -> None:
        self._loading = True
        try:
            for row in range(self.rowCount()):
                item = self.item(row, ABSENT)
                if item is None:
                    continue
                if (self._slice, row) in self._absent:
                    state, tip = Qt.CheckState.Checked, "Ticked: absent on this slice"
                elif row in self._inferred:
                    state, tip = Qt.CheckState.PartiallyChecked, INFERRED_TIP
                else:
                    state, tip = Qt.CheckState.Unchecked, "Tick if the class is not on this slice"
                item.setCheckState(state)
                item.setToolTip(tip)
        finally:
            self._loading = False

    def set_absent(self, row: int, absent: bool) -> None:
        self.item(row, ABSENT).setCheckState(Qt.CheckState.Checked if absent else Qt.CheckState.Unchecked)

    # ---------------------------------------------------------------- slots
    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._loading:
            return
        if item.column() == ABSENT:
            key = (self._slice, item.row())
            if item.checkState() == Qt.CheckState.Checked:
                self._absent.add(key)
            else:
                self._absent.discard(key)
            self._show_absent()  # unticked where the strokes still make it absent: half-ticked again
        self.changed.emit()

    def _on_selection(self) -> None:
        row = self.currentRow()
        if row >= 0:
            self.class_selected.emit(row)
