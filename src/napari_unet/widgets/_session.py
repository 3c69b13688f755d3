"""What the sections of the dock share: the viewer, the current model, the device."""

from qtpy.QtCore import QObject, Signal

from ..segmenter import Segmenter


class Session(QObject):
    """The current model and whether a training round runs; ``changed`` tells the sections."""

    changed = Signal()

    def __init__(self, viewer, parent: QObject | None = None):
        super().__init__(parent)
        self.viewer = viewer
        self.model: Segmenter | None = None
        self.device = "auto"
        self.training = False

    def set_model(self, model: Segmenter | None) -> None:
        self.model = model
        self.changed.emit()

    def set_training(self, running: bool) -> None:
        self.training = running
        self.changed.emit()
