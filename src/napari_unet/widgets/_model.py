"""Model: the current model, the device it runs on, and its safe model files."""

import copy
import functools
import os
from pathlib import Path

from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
)

from ..engine.device import describe, resolve_device
from ..engine.errors import UNetError
from ..engine.segmenter import Segmenter
from ..models import BUILTIN, builtin_path
from ..storage import autosave
from ..storage.bioimageio import export_model
from ..storage.loading import load_model
from ..storage.model_files import SUFFIX, save_model
from . import _jobs
from ._session import LOADED, Session, confirm_replace

FILE_FILTER = f"napari-unet model (*{SUFFIX})"
PACKAGE_FILTER = "bioimage.io model package (*.zip)"


def available_devices() -> list[tuple[str, str]]:
    """(device name, description) of each device here, the automatic choice first."""
    found = []
    for name in ("cuda", "mps", "cpu"):
        try:
            found.append((name, describe(resolve_device(name))))
        except UNetError:
            continue
    return found


def summarize(model: Segmenter) -> str:
    """Three short lines: architecture, classes, training rounds."""
    return "\n".join(model.summary())


def wrappable(path: Path) -> str:
    """``path`` with zero-width spaces after each separator, so that a label can wrap it."""
    return str(path).replace(os.sep, os.sep + "\u200b")


class ModelSection(QGroupBox):
    """Shows the current model; loads and saves it (safetensors, atomic writes)."""

    def __init__(self, session: Session, parent=None):
        super().__init__("3 · Model", parent)
        self.session = session
        self.description = QLabel()
        self.description.setWordWrap(True)
        self.file = QLabel()
        self.file.setWordWrap(True)
        self.recent = QComboBox()
        self.recent.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.recent.setMinimumContentsLength(12)
        self.recent.setToolTip(
            "The built-in starting models, then every training round's model (the newest "
            f"{autosave.KEEP}), kept in {autosave.folder()}"
        )
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Make the chosen model the current one")
        self.open_button.clicked.connect(self.open_recent)
        self.device = QComboBox()
        for name, text in available_devices():
            self.device.addItem(text, name)
        self.device.setToolTip("Where training and prediction run")
        self.device.currentIndexChanged.connect(self._device_chosen)
        self.load_button = QPushButton("Load…")
        self.load_button.clicked.connect(self._ask_load)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self._ask_save)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip(
            "Write a bioimage.io model package (.zip) for Fiji, ilastik, QuPath or the model zoo"
        )
        self.export_button.clicked.connect(self._ask_export)
        self.exporting = None

        form = QFormLayout()
        form.addRow("Device", self.device)
        recent = QHBoxLayout()
        recent.addWidget(self.recent, 1)
        recent.addWidget(self.open_button)
        form.addRow("Recent", recent)
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.description)
        layout.addWidget(self.file)
        layout.addLayout(form)
        layout.addLayout(buttons)
        session.changed.connect(self._sync)
        session.model_replaced.connect(self.list_recent)
        self._device_chosen()
        self.list_recent()
        self._sync()

    def list_recent(self, how=None) -> None:
        """List the built-in starting models, then the kept models, newest first."""
        self.recent.clear()
        for name, what in BUILTIN.items():
            self.recent.addItem(f"{name} · built-in", builtin_path(name))
            self.recent.setItemData(
                self.recent.count() - 1,
                f"Built-in starting model: {what}. Predicts before any annotation; "
                "Start fine-tunes it.",
                Qt.ItemDataRole.ToolTipRole,
            )
        if BUILTIN:
            self.recent.insertSeparator(self.recent.count())
        newest = self.first_kept = self.recent.count()
        for kept in autosave.kept():
            self.recent.addItem(kept.label, kept.path)
            self.recent.setItemData(
                self.recent.count() - 1, str(kept.path), Qt.ItemDataRole.ToolTipRole
            )
        if self.recent.count() > newest:
            self.recent.setCurrentIndex(newest)  # the newest round, as before built-ins
        self._sync()

    def open_recent(self) -> None:
        """Make the chosen recent model the current one."""
        path = self.recent.currentData()
        if path is not None:
            self.load(path)

    def save(self, path: str | Path) -> Path | None:
        """Write the current model to ``path`` (replacing it: the file dialog asked)."""
        if self.session.model is None:
            show_error("There is no model to save yet: train or load one first.")
            return None
        try:
            path = save_model(self.session.model, path, overwrite=True)
        except (UNetError, OSError) as error:
            show_error(f"Cannot save the model: {error}")
            return None
        self.session.model_file = path
        self._sync()
        show_info(f"Model saved as {path.name}: its folder is shown under Model.")
        return path

    def export(self, path: str | Path):
        """Write the current model as a bioimage.io package in the background (replacing
        ``path``: the file dialog asked); returns the worker."""
        if self.session.model is None:
            show_error("There is no model to export yet: train or load one first.")
            return None
        run = functools.partial(
            export_model, copy.deepcopy(self.session.model), path, overwrite=True
        )
        self.exporting = _jobs.start(
            run,
            returned=self._exported,
            errored=functools.partial(_jobs.notify_error, "Export"),
            finished=self._export_finished,
        )
        self._sync()
        return self.exporting

    def load(self, path: str | Path) -> None:
        """Make the model in ``path`` (a model file or a bioimage.io package exported by
        napari-unet) the current one, asking first if the current one is in no file."""
        if not confirm_replace(self.session, self):
            return
        try:
            model = load_model(path)
        except (UNetError, OSError) as error:
            show_error(f"Cannot load the model: {error}")
            return
        self.session.set_model(model, LOADED, Path(path))
        show_info(f"Loaded {Path(path).name}: {model.describe()}")

    def _ask_save(self) -> None:
        dialog = QFileDialog(self, "Save model", f"model{SUFFIX}", FILE_FILTER)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix(SUFFIX.lstrip("."))
        if dialog.exec():
            self.save(dialog.selectedFiles()[0])

    def _ask_load(self) -> None:
        filters = f"{FILE_FILTER};;{PACKAGE_FILTER}"
        path, _ = QFileDialog.getOpenFileName(self, "Load model", "", filters)
        if path:
            self.load(path)

    def _ask_export(self) -> None:
        dialog = QFileDialog(self, "Export as bioimage.io package", "model.zip", PACKAGE_FILTER)
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setDefaultSuffix("zip")
        if dialog.exec():
            self.export(dialog.selectedFiles()[0])

    def _exported(self, path: Path) -> None:
        show_info(f"Exported {path.name}, a bioimage.io model package.")

    def _export_finished(self) -> None:
        self.exporting = None
        self._sync()

    def _device_chosen(self, index=None) -> None:
        self.session.device = self.device.currentData() or "auto"

    def _sync(self) -> None:
        model, training = self.session.model, self.session.training
        if model is None:
            self.description.setText("No model yet: train one, open a recent one or load a file.")
        else:
            self.description.setText(summarize(model))
        file = self.session.model_file
        shown = model is not None and file is not None
        self.file.setText(f"File: {wrappable(file)}" if shown else "")
        self.file.setToolTip(str(file) if shown else "")
        self.file.setVisible(bool(self.file.text()))
        self.save_button.setEnabled(model is not None)
        self.export_button.setEnabled(model is not None and self.exporting is None)
        self.load_button.setEnabled(not training)
        self.open_button.setEnabled(not training and self.recent.count() > 0)
        self.device.setEnabled(not training)
