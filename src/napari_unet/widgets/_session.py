"""What the sections of the dock share, one per viewer: the current model, the device, and
whether a round runs. It outlives the dock, so a dock closed and opened again finds its model."""

import weakref
from dataclasses import dataclass
from pathlib import Path

from napari.utils.notifications import show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QMessageBox

from ..engine.segmenter import Segmenter

TRAINED, CONTINUED, LOADED = "trained", "continued", "loaded"


@dataclass(frozen=True)
class Round:
    """The outcome of a training round: the model (None when stopped before its first step),
    ``TRAINED`` or ``CONTINUED``, the file it is kept in, or why it could not be kept."""

    segmenter: Segmenter | None
    how: str
    file: Path | None = None
    problem: str | None = None


_sessions: dict[int, "Session"] = {}


def unwrap(viewer):
    """The viewer itself, not the proxy that napari hands to plugin widgets: layers reached
    through the proxy are proxies too, and would not be the layers that events carry."""
    return getattr(viewer, "__wrapped__", viewer)


def session_of(viewer) -> "Session":
    """The session of ``viewer``, created on first use and dropped with the viewer."""
    viewer = unwrap(viewer)
    session = _sessions.get(id(viewer))
    if session is None or session.viewer is not viewer:
        session = Session(viewer)
        _sessions[id(viewer)] = session
        weakref.finalize(viewer, _sessions.pop, id(viewer), None)
    return session


class Session(QObject):
    """``changed``: the model or the training state changed; ``model_replaced(how)``: a new
    model (``TRAINED``, ``CONTINUED`` or ``LOADED``) took the place of the current one."""

    changed = Signal()
    model_replaced = Signal(str)

    def __init__(self, viewer, parent: QObject | None = None):
        super().__init__(parent)
        self._viewer = weakref.ref(viewer)
        self.model: Segmenter | None = None
        self.model_file: Path | None = None
        self.device = "auto"
        self.training = False

    @property
    def viewer(self):
        return self._viewer()

    def set_model(self, model: Segmenter | None, how: str = LOADED, file: Path | None = None):
        """Make ``model`` the current one; ``file`` is where it is kept, if it is."""
        self.model, self.model_file = model, file
        self.model_replaced.emit(how)
        self.changed.emit()

    def keep_round(self, outcome: Round) -> None:
        """Make a trained model the current one, also when the dock was closed meanwhile."""
        if outcome.segmenter is None:
            return
        if outcome.problem:
            show_warning(f"Save the new model with Save…: {outcome.problem}")
        self.set_model(outcome.segmenter, outcome.how, outcome.file)

    def set_training(self, running: bool) -> None:
        self.training = running
        self.changed.emit()


def confirm_replace(session: Session, parent=None) -> bool:
    """Whether the current model may be replaced: yes when there is none or it is in a file,
    otherwise the user is asked."""
    if session.model is None or (session.model_file and session.model_file.exists()):
        return True
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent,
        "Replace the current model?",
        "The current model is not saved in any file. Replace it anyway?\n"
        "(Cancel, then Model › Save… keeps it.)",
        buttons.Yes | buttons.Cancel,
        buttons.Cancel,
    )
    return answer == buttons.Yes
