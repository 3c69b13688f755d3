"""A combo box of the viewer's layers of one type, kept in sync with the layer list."""

from qtpy.QtWidgets import QComboBox


class LayerCombo(QComboBox):
    """Layers of type ``kind``; :meth:`layer` is the chosen one (or None)."""

    def __init__(self, viewer, kind, parent=None):
        super().__init__(parent)
        self.viewer, self.kind = viewer, kind
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(12)
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self.refresh)
        viewer.layers.events.moved.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def layer(self):
        """The chosen layer, if it is still in the viewer."""
        layer = self.currentData()
        return layer if layer is not None and layer in self.viewer.layers else None

    def choose(self, layer) -> None:
        self.setCurrentIndex(self.findData(layer))

    def refresh(self, event=None) -> None:
        """List the layers again, keeping the choice when it still exists."""
        chosen = self.currentData()
        layers = [layer for layer in self.viewer.layers if isinstance(layer, self.kind)]
        self.blockSignals(True)
        self.clear()
        for layer in layers:
            self.addItem(layer.name, layer)
        self.setCurrentIndex(self.findData(chosen) if chosen in layers else 0 if layers else -1)
        self.blockSignals(False)
        if chosen is not self.currentData():
            self.currentIndexChanged.emit(self.currentIndex())

    def _inserted(self, event) -> None:
        event.value.events.name.connect(self.refresh)
        self.refresh()
