"""napari closing while a round trains: say so, name the annotation layers that are in no
file, and keep the round before the window goes (the process may end right after)."""

import numpy as np
from napari.layers import Labels
from napari.utils.notifications import show_warning
from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QApplication, QMainWindow, QMessageBox

from ._layers import OUTPUT_KEY, image_data
from ._session import Session


class CloseGuard(QObject):
    """Watches napari's main window: a close while a round trains asks first (when the
    window is shown and the round is not already stopping), then stops the round and waits
    until its model is kept."""

    def __init__(self, session: Session, window: QMainWindow):
        super().__init__(window)
        self.session = session
        window.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        job = self.session.job
        if event.type() == QEvent.Type.Close and job is not None:
            viewer = self.session.viewer
            ask = watched.isVisible() and job.stopped_by is None and viewer is not None
            if ask and not confirm_quit(watched, unsaved_annotations(viewer)):
                event.ignore()
                return True
            keep_the_round(self.session)
        return False


def keep_the_round(session: Session) -> None:
    """Stop the running round and wait, with a wait cursor, until its model is kept."""
    if session.viewer is not None:
        session.viewer.status = "Keeping the training round before napari closes…"
    QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
    try:
        kept = session.finish_round("napari is closing")
    finally:
        QApplication.restoreOverrideCursor()
    if not kept:
        show_warning(
            "napari closed before the training round ended: that round is not kept; the "
            "rounds before it are under Model › Recent."
        )


def guard(session: Session, widget) -> None:
    """Guard the main window that holds ``widget`` (once per window)."""
    window = widget.parentWidget()
    while window is not None and not isinstance(window, QMainWindow):
        window = window.parentWidget()
    if window is not None and window.findChild(CloseGuard) is None:
        CloseGuard(session, window)


def unsaved_annotations(viewer) -> list[str]:
    """Names of the painted Labels layers that are in no file (this plugin's unedited
    outputs left out: predicting again makes them)."""
    return [
        layer.name
        for layer in viewer.layers
        if isinstance(layer, Labels)
        and layer.source.path is None
        and not layer.metadata.get(OUTPUT_KEY)
        and np.any(image_data(layer))
    ]


def confirm_quit(parent, unsaved: list[str]) -> bool:
    """Whether napari may close while training runs."""
    text = (
        "A U-Net training round is running. Closing stops it and keeps the model trained so "
        "far under Model › Recent."
    )
    if unsaved:
        names = ", ".join(f"'{name}'" for name in unsaved)
        text += (
            f"\n\nAnnotation layers in no file: {names}. To keep them, Cancel, select them and "
            "use File › Save Selected Layers…"
        )
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent, "Training is running", text, buttons.Close | buttons.Cancel, buttons.Cancel
    )
    return answer == buttons.Close
