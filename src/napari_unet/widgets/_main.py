"""The U-Net dock widget: annotate, train, keep the model, predict, in one scrollable column."""

from qtpy.QtCore import QEvent, QSize, Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from . import _jobs
from ._annotate import AnnotateSection
from ._model import ModelSection
from ._predict import PredictSection
from ._session import session_of
from ._train import TrainSection


class VerticalScroll(QScrollArea):
    """Scrolls vertically only; as wide as the sections need, also when they grow."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._width = -1

    def minimumSizeHint(self) -> QSize:
        width = (
            self.widget().minimumSizeHint().width() + self.verticalScrollBar().sizeHint().width()
        )
        return QSize(width, super().minimumSizeHint().height())

    def eventFilter(self, watched, event) -> bool:
        """Tell napari's window only when the width the sections need changes: a layout
        request that reaches the window lays out (and redraws) the whole window."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            width = self.widget().minimumSizeHint().width()
            if width != self._width:
                self._width = width
                self.updateGeometry()
        return super().eventFilter(watched, event)


class UNetWidget(QWidget):
    """Annotate a few slices, train a U-Net in the background, predict, correct, repeat."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        _jobs.leave_a_core_for_the_gui()
        _jobs.warm_up()
        self.session = session_of(napari_viewer)
        self.viewer = self.session.viewer
        self.annotate = AnnotateSection(self.session)
        self.train = TrainSection(self.session, self.annotate)
        self.model = ModelSection(self.session)
        self.predict = PredictSection(self.session, self.annotate)

        column = QWidget()
        sections = QVBoxLayout(column)
        for section in (self.annotate, self.train, self.model, self.predict):
            section.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            sections.addWidget(section)
        sections.addStretch(1)
        scroll = VerticalScroll()
        scroll.setWidget(column)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        self._docked = False

    def event(self, event) -> bool:
        """Stop the running jobs when napari takes the dock away (its close button, or the
        window closing): the session keeps the model for a dock opened again."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
            elif self._docked:
                self._docked = False
                self.shut_down()
        return super().event(event)

    def shut_down(self) -> None:
        self.train.shut_down()
        self.predict.cancel()
