"""The U-Net dock widget: annotate, train, predict, and the model kept, in one scrollable column
(the loop first: it fits a 1366×768 screen)."""

from qtpy.QtCore import QEvent, QObject, QSize, Qt, QTimer
from qtpy.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QFrame,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from . import _closing, _jobs
from ._annotate import AnnotateSection
from ._model import ModelSection
from ._predict import PredictSection
from ._session import remember, session_of
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


class WheelGuard(QObject):
    """The mouse wheel over a combo box or spin box without focus scrolls the dock, and
    changes no value (scrolling to Predict changed the model under Recent)."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Wheel and not watched.hasFocus():
            event.ignore()  # ignored, the event goes on to the scroll area
            return True
        return False


def guard_wheel(root: QWidget) -> None:
    guard = WheelGuard(root)
    for kind in (QComboBox, QAbstractSpinBox):
        for control in root.findChildren(kind):
            control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            control.installEventFilter(guard)


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
        for section in (self.annotate, self.train, self.predict, self.model):
            section.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            sections.addWidget(section)
        sections.addStretch(1)
        scroll = VerticalScroll()
        scroll.setWidget(column)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)
        guard_wheel(column)
        remember(self.session.settings, self.settings_controls())
        self._docked = False
        self._guard_later = QTimer(self, singleShot=True, interval=0)
        self._guard_later.timeout.connect(lambda: _closing.guard(self.session, self))

    def settings_controls(self) -> dict:
        """The controls whose values a dock opened again starts from (the unit before the
        duration: choosing a unit sets its default duration)."""
        train, predict = self.train, self.predict
        return {
            "train unit": train.unit,
            "train duration": train.duration,
            "model size": train.size,
            "device": self.model.device,
            "classes": predict.classes,
            "probabilities": predict.probabilities,
            "objects": predict.instances,
            "split": predict.split,
            "min size": predict.min_size,
        }

    def event(self, event) -> bool:
        """Guard napari's window once docked (a close while training keeps the round); stop
        the running jobs when napari takes the dock away (its close button): the session keeps
        the model for a dock opened again."""
        if event.type() == QEvent.Type.ParentChange:
            if self.parent() is not None:
                self._docked = True
                self._guard_later.start()
            elif self._docked:
                self._docked = False
                self.shut_down()
        return super().event(event)

    def shut_down(self) -> None:
        self.train.shut_down()
        self.predict.cancel()
