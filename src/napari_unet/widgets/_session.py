"""What the sections of the dock share, one per viewer: the current model, the device, the
running round and the dock's settings. It outlives the dock, so a dock closed and opened again
finds its model, its settings, and the round it started."""

import weakref
from dataclasses import dataclass
from pathlib import Path

from napari.utils.notifications import show_info, show_warning
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QAbstractButton, QComboBox, QMessageBox

from ..engine.segmenter import Segmenter
from . import _jobs

TRAINED, CONTINUED, LOADED = "trained", "continued", "loaded"
FINISH_SECONDS = 120
"""How long napari's closing waits for a stopped round to end and be kept."""


@dataclass(frozen=True)
class Round:
    """The outcome of a training round: the model (None when stopped before its first step),
    ``TRAINED`` or ``CONTINUED``, the file it is kept in, or why it could not be kept, and why
    it ended early, if it did."""

    segmenter: Segmenter | None
    how: str
    file: Path | None = None
    problem: str | None = None
    stopped_by: str | None = None

    def report(self) -> str:
        """What the round did and where its model is, in one line."""
        why = f" ({self.stopped_by})" if self.stopped_by else ""
        if self.segmenter is None:
            return f"Training stopped before its first step{why}: the model is unchanged."
        entry = self.segmenter.history[-1] if self.segmenter.history else {}
        dice = entry.get("validation_dice")
        score = "" if dice is None else f", validation Dice {dice:.2f}"
        ended = f"stopped{why}" if self.stopped_by else "done"
        done = f"Training round {ended}: {entry.get('steps', '?')} steps{score}."
        if self.file is None:
            return f"{done} It is in no file ({self.problem}): Model › Save… keeps it."
        return f"{done} Kept as {self.file.name} in {self.file.parent} (Model › Recent)."


class TrainedOn:
    """The image layer a model was trained on, held weakly: renaming it keeps it the same
    image, and one opened again under its name (after it was deleted) counts as the same."""

    def __init__(self, layer):
        self.name = layer.name
        self._layer = weakref.ref(layer)

    def matches(self, layer) -> bool:
        kept = self._layer()
        return layer is kept or (kept is None and layer.name == self.name)

    def __str__(self) -> str:
        kept = self._layer()
        return kept.name if kept is not None else self.name


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
        self.job = None
        self.trained_on: TrainedOn | None = None
        self.settings: dict[str, object] = {}

    @property
    def viewer(self):
        return self._viewer()

    def set_model(self, model: Segmenter | None, how: str = LOADED, file: Path | None = None):
        """Make ``model`` the current one; ``file`` is where it is kept, if it is."""
        self.model, self.model_file = model, file
        if how == LOADED:
            self.trained_on = None
        self.model_replaced.emit(how)
        self.changed.emit()

    def keep_round(self, outcome: Round) -> None:
        """Make a trained model the current one, also when the dock was closed meanwhile, and
        say what the round did and where its model is."""
        if outcome.segmenter is None or outcome.file is None:
            show_warning(outcome.report())
        else:
            show_info(outcome.report())
        if outcome.segmenter is not None:
            self.set_model(outcome.segmenter, outcome.how, outcome.file)
            self.trained_on = getattr(self.job, "trained_on", None)

    def begin_round(self, job) -> None:
        """``job`` runs a round: it has ``stop(reason)`` and the image it trains on as
        ``trained_on``."""
        self.job = job
        self.set_training(True)

    def end_round(self) -> None:
        self.job = None
        self.set_training(False)

    def finish_round(self, reason: str) -> bool:
        """Stop the running round and wait (at most ``FINISH_SECONDS``) until it has ended and
        kept its model; whether it has (napari's closing waits here: the process may end
        right after)."""
        job = self.job
        if job is None:
            return True
        job.stop(reason)
        return _jobs.wait_until(lambda: self.job is not job, FINISH_SECONDS)

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


def remember(settings: dict, controls: dict) -> None:
    """Give each of ``controls`` (by key) the value kept in ``settings`` by a dock closed
    before, and keep its value there as it changes."""
    for key, control in controls.items():
        if key in settings:
            _set_value(control, settings[key])

        def keep(*args, key=key, control=control) -> None:
            settings[key] = _value(control)

        keep()
        _changed(control).connect(keep)


def _value(control):
    if isinstance(control, QComboBox):
        return control.currentText()
    if isinstance(control, QAbstractButton):
        return control.isChecked()
    return control.value()


def _set_value(control, value) -> None:
    if isinstance(control, QComboBox):
        index = control.findText(value)
        if index >= 0:
            control.setCurrentIndex(index)
    elif isinstance(control, QAbstractButton):
        control.setChecked(value)
    else:
        control.setValue(value)


def _changed(control):
    if isinstance(control, QComboBox):
        return control.currentTextChanged
    if isinstance(control, QAbstractButton):
        return control.toggled
    return control.valueChanged
