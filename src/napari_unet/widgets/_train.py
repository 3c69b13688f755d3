"""Train: a round of training in a thread worker, with a live loss plot and Stop."""

import copy
import dataclasses
from pathlib import Path

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from ..engine.errors import UNetError
from ..engine.start_answers import merged_note
from ..engine.train import Trainer, TrainProgress, TrainSettings
from ..storage import autosave
from . import _jobs
from ._annotate import AnnotateSection
from ._layers import (
    MODEL_KEY,
    channel_axis,
    channel_count,
    class_names,
    image_data,
    misplacement,
    paints_objects,
    snapshot,
    stored_class_names,
    unsuitable,
)
from ._plot import LossPlot, readable_loss
from ._session import CONTINUED, LOADED, TRAINED, Round, Session, TrainedOn, confirm_replace

SIZES = {
    "auto size": (None, None),
    "small (3×16)": (3, 16),
    "large (4×32)": (4, 32),
}
DURATION_DEFAULTS = {"minutes": 2.0, "steps": 500}
PROGRESS_SCALE = 1000
PROGRESS_HEIGHT = 8
CONTINUE, NEW = "continue", "new"


class TrainSection(QGroupBox):
    """Settings, Start/Stop, progress and the loss plot of training rounds."""

    def __init__(self, session: Session, annotate: AnnotateSection, parent=None):
        super().__init__("2 · Train", parent)
        self.session, self.annotate = session, annotate
        self.duration = QDoubleSpinBox(decimals=1, minimum=0.1, maximum=100000)
        self.unit = QComboBox()
        self.unit.addItems(list(DURATION_DEFAULTS))
        self.unit.currentTextChanged.connect(self._unit_changed)
        self._unit_changed(self.unit.currentText())
        self.size = QComboBox()
        self.size.addItems(list(SIZES))
        self.size.setToolTip(
            "Architecture of a new model: auto is small (depth 3, width 16) on the CPU, "
            "large (depth 4, width 32) on a GPU (a continued model keeps its own)"
        )
        self.resume = QCheckBox("Continue")
        self.resume.setToolTip(
            "Continue from the current model: fine-tune it instead of starting a new one"
        )
        self.resume.toggled.connect(self._sync)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip(
            "End the round after this step; the model trained so far is kept under Model › Recent"
        )
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar(
            maximum=PROGRESS_SCALE, textVisible=False, maximumHeight=PROGRESS_HEIGHT
        )
        self.status = QLabel("Annotate, then press Start.")
        self.status.setWordWrap(True)
        self.status.setMinimumHeight(2 * self.status.fontMetrics().lineSpacing())
        self.plot = LossPlot(session.viewer.theme, self)

        duration = QHBoxLayout()
        duration.addWidget(self.duration, 1)
        duration.addWidget(self.unit)
        duration.addWidget(self.size)
        form = QFormLayout()
        form.addRow("Train for", duration)
        buttons = QHBoxLayout()
        buttons.addWidget(self.resume)
        buttons.addWidget(self.start_button, 1)
        buttons.addWidget(self.stop_button, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.plot)

        self._show_later = _jobs.Throttle(self._show, parent=self)
        self.job: RoundJob | None = None
        self.worker = None
        self.last: TrainProgress | None = None
        self._outcome = ""
        self._inputs: tuple = ()
        session.changed.connect(self._sync)
        session.model_replaced.connect(self._model_replaced)
        session.viewer.layers.events.removed.connect(self._layer_removed)
        self.resume.setChecked(session.model is not None)
        self._sync()

    def settings(self, resume: bool = False) -> TrainSettings:
        """The round's settings from the controls (a model trained on keeps its size)."""
        depth, width = (None, None) if resume else SIZES[self.size.currentText()]
        value = self.duration.value()
        by_time = self.unit.currentText() == "minutes"
        return TrainSettings(
            steps=None if by_time else max(1, round(value)),
            time_limit=value * 60 if by_time else None,
            depth=depth,
            width=width,
            device=self.session.device,
        )

    def start(self) -> None:
        """Start a round on the chosen image and a snapshot of its annotations."""
        if self.job is not None:
            return
        image, annotations = self.annotate.image(), self.annotate.annotations()
        if image is None:
            show_error("Training needs an image: open one and choose it under Annotate.")
            return
        if problem := unsuitable(image):
            show_error(f"Cannot train: {problem}")
            return
        if annotations is None:
            show_error("Training needs annotations: click New under Annotate and paint.")
            return
        model = self.session.model
        resume = model is not None and self.resume.isChecked()
        if resume:
            resume = self._continue_here(image, annotations)
            if resume is None:
                return
        if not resume and not confirm_replace(self.session, self):
            return
        misplaced = misplacement(annotations, image)
        if misplaced:
            show_warning(
                f"'{annotations.name}' lies otherwise than '{image.name}' in the viewer "
                f"({misplaced}): training pairs their pixels by their place in the arrays, "
                "not as the viewer shows them. If they should overlap as shown, paint in a "
                "layer made by New under Annotate, which lies exactly over the image."
            )
        _jobs.leave_a_core_for_the_gui()
        try:
            trainer = Trainer(
                image_data(image),
                snapshot(annotations),
                channel_axis=channel_axis(image),
                settings=self.settings(resume),
                segmenter=renamed(model, annotations) if resume else None,
                class_names=class_names(annotations, 2),
                objects=paints_objects(annotations),
            )
        except UNetError as error:
            show_error(f"Cannot train: {error}")
            return
        job = RoundJob(
            trainer, CONTINUED if resume else TRAINED, image, models_in_use(self.session)
        )
        self.job, self.last, self._inputs = job, None, (image, annotations)
        self._outcome = "Not trained."
        if not resume:
            self.plot.clear()
        self.plot.start_round()
        self.progress.setValue(0)
        self.status.setText("Preparing the annotated slices…")
        self.worker = _jobs.start(
            job.run,
            on_quit=lambda: job.stop("napari is closing"),
            yielded=self._progress,
            returned=[self.session.keep_round, self._trained],
            errored=self._failed,
            finished=[self._finished, self.session.end_round],
        )
        self.session.begin_round(job)

    def stop(self) -> None:
        """End the round after the current step; the model trained so far is kept."""
        if self.job is not None:
            self.job.stop("Stop was pressed")
            self.status.setText("Stopping after this step…")

    def _continue_here(self, image, annotations) -> bool | None:
        """Whether to fine-tune the current model on ``image`` (False: a new model; None:
        cancelled), asking when the image, its channels or the class names differ from the
        model's; a new model unticks Continue."""
        model = self.session.model
        channels = channel_count(image)
        if channels != model.in_channels:
            text = (
                f"The current model takes {model.in_channels} channel(s) and '{image.name}' "
                f"has {channels}, so it cannot be fine-tuned on it. Train a new model on "
                f"'{image.name}' instead (Continue unticked)?"
            )
            choice = ask_how_to_train(self, text, can_continue=False)
        else:
            reasons = differences(model, image, annotations, self.session.trained_on)
            if not reasons:
                return True
            text = (
                "The current model may not fit these annotations:\n"
                + "\n".join(f"• {reason}" for reason in reasons)
                + "\n\nFine-tune it anyway (it takes the class names of the annotations), or "
                "train a new model?"
            )
            choice = ask_how_to_train(self, text, can_continue=True)
        if choice == NEW:
            self.resume.setChecked(False)
            return False
        return True if choice == CONTINUE else None

    def _progress(self, progress: TrainProgress) -> None:
        if self.last is None and progress.merged_regions:
            annotations = self._inputs[1] if self._inputs else None
            if annotations is not None and paints_objects(annotations):
                advice = "give each its own id (New object)"
            else:
                advice = (
                    "paint them with Paint: objects (each its own id), or leave a background "
                    "line between them"
                )
            show_info(f"{merged_note(progress.merged_regions)} Where they are separate, {advice}.")
        self.last = progress
        self.plot.add(progress)
        self._show_later.poke()

    def _show(self) -> None:
        if self.last is not None:
            self.progress.setValue(round(self.last.fraction * PROGRESS_SCALE))
            self.status.setText(describe(self.last))
        self.plot.update()

    def _trained(self, outcome: Round) -> None:
        if outcome.segmenter is not None and self.last is not None:
            self._outcome = summarize(self.last) + trained_at(outcome.segmenter.history[-1])

    def _failed(self, error: BaseException) -> None:
        self._outcome = "Training failed: see the notification."
        _jobs.notify_error("Training failed", error)

    def _finished(self) -> None:
        self.job, self.worker, self._inputs = None, None, ()
        self._show_later.stop()
        self._show()
        self.progress.setValue(PROGRESS_SCALE if self._outcome.startswith("Done") else 0)
        self.status.setText(self._outcome)

    def shut_down(self) -> None:
        """Stop the round because the dock closes: the session still receives the model."""
        if self.job is not None:
            self.job.stop("the dock was closed")
            show_warning(
                "The U-Net dock was closed: training stops after this step, and its model is "
                "then kept under Model › Recent."
            )

    def _model_replaced(self, how: str) -> None:
        if self.session.model is not None:
            self.resume.setChecked(True)
        if how == LOADED:
            self.plot.clear()

    def _layer_removed(self, event) -> None:
        if self.job is not None and event.value in self._inputs:
            self.job.stop(f"layer '{event.value.name}' was deleted")
            show_warning(
                f"Training stops after this step: layer '{event.value.name}' was deleted. "
                "Its model is then kept under Model › Recent."
            )

    def _sync(self) -> None:
        running, has_model = self.session.training, self.session.model is not None
        self.resume.setEnabled(has_model and not running)
        self.size.setEnabled(not (has_model and self.resume.isChecked()) and not running)
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for control in (self.duration, self.unit):
            control.setEnabled(not running)

    def _unit_changed(self, unit: str) -> None:
        self.duration.setDecimals(1 if unit == "minutes" else 0)
        self.duration.setValue(DURATION_DEFAULTS[unit])


class RoundJob:
    """A training round for a worker thread: however it ends (its steps or time, Stop, a
    deleted layer, the dock or napari closing), it returns its model kept in the autosave
    folder, and why it ended early."""

    def __init__(self, trainer: Trainer, how: str, image, in_use=()):
        self.trainer, self.how, self.trained_on = trainer, how, TrainedOn(image)
        self.in_use = list(in_use)
        self.stopped_by: str | None = None

    def stop(self, reason: str) -> None:
        """End the round after the current step; the first ``reason`` given is reported."""
        if self.stopped_by is None:
            self.stopped_by = reason
        self.trainer.stop()

    def run(self):
        outcome = yield from train_and_keep(self.trainer, self.how, self.in_use)
        return dataclasses.replace(outcome, stopped_by=self.stopped_by)


def models_in_use(session) -> list[Path]:
    """The model files the current model and the viewer's result layers came from: kept
    rounds that pruning must spare."""
    files = [session.model_file] if session.model_file is not None else []
    viewer = session.viewer
    for layer in viewer.layers if viewer is not None else ():
        if layer.metadata.get(MODEL_KEY):
            files.append(Path(layer.metadata[MODEL_KEY]))
    return files


def train_and_keep(trainer: Trainer, how: str, in_use=()):
    """The trainer's progress, then the round's outcome, the model kept in the autosave folder
    (in the worker thread: the model is kept even if the dock is gone), sparing the kept
    rounds ``in_use``."""
    segmenter = yield from trainer.run()
    if not segmenter.history or not segmenter.history[-1].get("steps"):
        return Round(None, how)
    try:
        return Round(segmenter, how, autosave.keep(segmenter, protect=in_use))
    except UNetError as error:
        return Round(segmenter, how, problem=str(error))


def differences(model, image, annotations, trained_on: TrainedOn | None) -> list[str]:
    """Why fine-tuning ``model`` on ``image`` and ``annotations`` may cross datasets: another
    image than the one it was trained on here, other names for its classes."""
    found = []
    if trained_on is not None and not trained_on.matches(image):
        found.append(f"it was trained on '{trained_on}', not on '{image.name}'")
    stored = stored_class_names(annotations)
    for label, (theirs, ours) in enumerate(zip(stored, model.class_names, strict=False), 1):
        if theirs and theirs != ours:
            found.append(
                f"id {label} is '{theirs}' in '{annotations.name}', '{ours}' in the model"
            )
    return found


def renamed(model, annotations):
    """A copy of ``model`` whose classes take the names the annotations give them."""
    copied = copy.deepcopy(model)
    stored = stored_class_names(annotations)
    copied.class_names = [
        stored[i] if i < len(stored) and stored[i] else name
        for i, name in enumerate(model.class_names)
    ]
    return copied


def ask_how_to_train(parent, text: str, can_continue: bool) -> str:
    """``CONTINUE``, ``NEW`` or "" (cancelled), asked with ``text``."""
    box = QMessageBox(
        QMessageBox.Icon.Question, "Continue the current model?", text, parent=parent
    )
    role = QMessageBox.ButtonRole
    choices = {}
    if can_continue:
        choices[box.addButton("Fine-tune it", role.AcceptRole)] = CONTINUE
    new = box.addButton("New model", role.AcceptRole)
    choices[new] = NEW
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(new)
    box.exec()
    return choices.get(box.clickedButton(), "")


def describe(progress: TrainProgress) -> str:
    """E.g. "step 120/500 · loss 0.213 · Dice 0.87 — 0:45, about 1:15 left, 1.2 Mpx/s"."""
    steps = f"/{progress.steps}" if progress.steps else ""
    dice = "" if progress.validation_dice is None else f" · Dice {progress.validation_dice:.2f}"
    left = remaining(progress)
    left = "" if left is None else f", about {clock(left)} left"
    return (
        f"step {progress.step}{steps} · loss {readable_loss(progress):.3f}{dice}\n"
        f"{clock(progress.elapsed)} elapsed{left} · {progress.pixels_per_second / 1e6:.2f} Mpx/s"
    )


def summarize(progress: TrainProgress) -> str:
    """E.g. "Done: 500 steps in 2:00" and "loss 0.102 · Dice 0.91" below."""
    dice = "" if progress.validation_dice is None else f" · Dice {progress.validation_dice:.2f}"
    return (
        f"Done: {progress.step} steps in {clock(progress.elapsed)}\n"
        f"loss {readable_loss(progress):.3f}{dice}"
    )


def trained_at(round_record: dict) -> str:
    """E.g. " · at ×0.51" when the round trained on the image rescaled to the object size,
    and a line on painted regions that merge the start model's objects (its note stays in
    napari's notifications)."""
    scale = round_record.get("scale", 1)
    text = "" if scale == 1 else f" · at ×{scale:.2f}"
    merged = round_record.get("merged_regions", 0)
    if merged:
        regions = f"{merged} painted region{'s' if merged > 1 else ''}"
        text += f"\n{regions} merged objects (see notifications)"
    return text


def remaining(progress: TrainProgress) -> float | None:
    """Seconds left by the time limit or the steps, whichever ends first."""
    estimates = []
    if progress.time_limit:
        estimates.append(progress.time_limit - progress.elapsed)
    if progress.steps and progress.step:
        estimates.append(progress.elapsed / progress.step * (progress.steps - progress.step))
    return max(0.0, min(estimates)) if estimates else None


def clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}"
