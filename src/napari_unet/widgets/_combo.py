"""A combo box of the viewer's layers of one type, kept in sync with the layer list."""

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox

from ._session import unwrap


class LayerCombo(QComboBox):
    """Layers of type ``kind`` that ``accept(layer)`` (all by default); :meth:`layer` is the
    chosen one (or None). When the choice goes, the first layer that ``prefer(layer)`` is
    chosen (any by default), or none. The list follows the layers' names and new data (of
    any layer: ``accept`` may compare shapes); call :meth:`refresh` when what ``accept`` says
    may have changed otherwise."""

    def __init__(self, viewer, kind, accept=None, prefer=None, parent=None):
        super().__init__(parent)
        self.viewer, self.kind = viewer, kind
        self.accept = accept or (lambda layer: True)
        self.prefer = prefer or (lambda layer: True)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        for layer in viewer.layers:
            self._watch(layer)
        self.refresh()

    def layer(self):
        """The chosen layer, if it is still in the viewer."""
        layer = self.currentData()
        return layer if layer is not None and layer in self.viewer.layers else None

    def layers(self) -> list:
        return [self.itemData(i) for i in range(self.count())]

    def choose(self, layer) -> bool:
        """Choose ``layer`` if it is listed; whether it is."""
        index = self._index(unwrap(layer))
        if index >= 0:
            self.setCurrentIndex(index)
        return index >= 0

    def refresh(self, event=None) -> None:
        """List the layers again, keeping the choice when it is still listed."""
        chosen = self.currentData()
        layers = [
            layer
            for layer in self.viewer.layers
            if isinstance(layer, self.kind) and self.accept(layer)
        ]
        self.blockSignals(True)
        self.clear()
        for layer in layers:
            self.addItem(layer.name, layer)
            self.setItemData(self.count() - 1, layer.name, Qt.ItemDataRole.ToolTipRole)
        index = self._index(chosen)
        if index < 0:
            index = next((i for i, layer in enumerate(layers) if self.prefer(layer)), -1)
        self.setCurrentIndex(index)
        self.blockSignals(False)
        if chosen is not self.currentData():
            self.currentIndexChanged.emit(self.currentIndex())

    def _index(self, layer) -> int:
        if layer is None:
            return -1
        return next((i for i in range(self.count()) if self.itemData(i) is layer), -1)

    def _inserted(self, event) -> None:
        self._watch(event.value)
        self.refresh()

    def _watch(self, layer) -> None:
        layer.events.name.connect(self.refresh)
        layer.events.data.connect(self.refresh)
