"""A combo box listing the viewer's layers of one type, kept in sync with the layer list."""

from __future__ import annotations

from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox

from napari_wss import _layers

NONE_TEXT = "(none)"


class LayerPicker(QComboBox):
    """Pick a layer of ``layer_type``; follows insertions, removals and renames.

    A newly inserted layer whose ``metadata["wss"]["role"]`` is ``role`` is picked at once (the
    reader and the sample data tag their layers), as is the first matching layer when nothing is
    picked yet (unless ``allow_none``, where the user must choose).
    """

    changed = Signal(object)  # the picked layer or None

    def __init__(self, viewer: Any, layer_type: type, *, role: str | None = None, allow_none: bool = False) -> None:
        super().__init__()
        self._viewer = viewer
        self._type = layer_type
        self._role = role
        self._allow_none = allow_none
        self._layers: list[Any] = []
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        self.currentIndexChanged.connect(self._emit)
        events = viewer.layers.events
        events.inserted.connect(self._on_inserted)
        events.removed.connect(self._refresh)
        events.moved.connect(self._refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self._refresh)
        self._refresh()
        if self.layer() is None:
            self._pick_default()

    def layer(self) -> Any:
        index = self.currentIndex() - (1 if self._allow_none else 0)
        return self._layers[index] if 0 <= index < len(self._layers) else None

    def set_layer(self, layer: Any) -> None:
        if layer is None:
            if self._allow_none:
                self.setCurrentIndex(0)
            return
        if layer in self._layers:
            self.setCurrentIndex(self._layers.index(layer) + (1 if self._allow_none else 0))

    def _matching(self) -> list[Any]:
        return [layer for layer in self._viewer.layers if isinstance(layer, self._type)]

    def _pick_default(self) -> None:
        candidates = self._matching()
        tagged = [ly for ly in candidates if self._role and _layers.role_of(ly.metadata) == self._role]
        if tagged:
            self.set_layer(tagged[-1])
        elif candidates and not self._allow_none:
            self.set_layer(candidates[-1])

    def _on_inserted(self, event: Any) -> None:
        layer = event.value
        layer.events.name.connect(self._refresh)
        self._refresh()
        if not isinstance(layer, self._type):
            return
        tagged = self._role is not None and _layers.role_of(layer.metadata) == self._role
        if tagged or (self.layer() is None and not self._allow_none):
            self.set_layer(layer)

    def _refresh(self, *_: Any) -> None:
        current = self.layer()
        self.blockSignals(True)
        try:
            self.clear()
            self._layers = self._matching()
            if self._allow_none:
                self.addItem(NONE_TEXT)
            for layer in self._layers:
                self.addItem(layer.name)
            if current in self._layers:
                self.set_layer(current)
            elif self._allow_none:
                self.setCurrentIndex(0)
        finally:
            self.blockSignals(False)
        if self.layer() is not current:
            self._emit()

    def _emit(self, *_: Any) -> None:
        self.changed.emit(self.layer())
