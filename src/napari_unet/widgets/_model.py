"""Model: the current model, the device it runs on, and its safe model files."""

import copy
import functools
import os
import re
from pathlib import Path

from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ..engine.device import describe, resolve_device
from ..engine.errors import UNetError
from ..engine.segmenter import Segmenter
from ..models import BUILTIN, builtin_name, builtin_path
from ..storage import autosave
from ..storage.bioimageio import export_model
from ..storage.loading import load_model
from ..storage.model_files import SUFFIX, save_model
from . import _jobs
from ._session import LOADED, Session, confirm_replace

FILE_FILTER = f"napari-unet-loop model (*{SUFFIX})"
PACKAGE_FILTER = "bioimage.io model package (*.zip)"
LICENSES = ("CC-BY-4.0", "CC0-1.0", "MIT", "BSD-3-Clause", "Apache-2.0")


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
        super().__init__("4 · Model", parent)
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
        self.kept = QLabel()
        self.kept.setWordWrap(True)
        self.budget = QSpinBox(
            minimum=int(autosave.BUDGET.low), maximum=int(autosave.BUDGET.high), suffix=" MB"
        )
        self.budget.setSingleStep(100)
        self.budget.setValue(autosave.budget() // 2**20)
        self.budget.setToolTip(
            "Space for the kept rounds: when a new round takes them over it, the oldest go. "
            "Rounds you opened, the current model and the models of result layers in the "
            "viewer are never deleted."
        )
        self.budget.editingFinished.connect(self._budget_changed)
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
        kept = QHBoxLayout()
        kept.addWidget(self.kept, 1)
        kept.addWidget(self.budget)
        form.addRow("Kept", kept)
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
        summary = f"{autosave.summary()}, in {autosave.folder()}"
        self.kept.setText(f"{autosave.usage()} of")  # read on into the budget: "of 500 MB"
        self.kept.setToolTip(summary)
        self.recent.setToolTip(
            f"The built-in starting models, then every training round's model: {summary}"
        )
        current = self._index_of(self.session.model_file)
        if current >= 0:
            self.recent.setCurrentIndex(current)
        elif self.recent.count() > newest:
            self.recent.setCurrentIndex(newest)  # the newest round, as before built-ins
        self._sync()

    def _index_of(self, path: Path | None) -> int:
        """The Recent entry of the model file ``path``, or -1."""
        if path is None:
            return -1
        for index in range(self.recent.count()):
            data = self.recent.itemData(index)
            if data is not None and Path(data) == Path(path):
                return index
        return -1

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

    def export(self, path: str | Path, authors: list[str], license: str):
        """Write the current model as a bioimage.io package in the background (replacing
        ``path``: the export dialog asked); returns the worker."""
        if self.session.model is None:
            show_error("There is no model to export yet: train or load one first.")
            return None
        run = functools.partial(
            export_model,
            copy.deepcopy(self.session.model),
            path,
            authors=authors,
            license=license,
            overwrite=True,
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
        try:
            autosave.pin(path)  # a kept round the user opened is never pruned
        except UNetError as error:
            show_warning(f"The opened round may be pruned later: {error}")
        show_info(f"Loaded {Path(path).name}: {model.describe()}")

    def _budget_changed(self) -> None:
        """Store the space for kept rounds; it applies when the next round is kept."""
        if self.budget.value() * 2**20 == autosave.budget():
            return
        try:
            autosave.set_budget(self.budget.value())
        except UNetError as error:
            show_error(f"Cannot change the space for kept models: {error}")
        self.list_recent()

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
        if self.session.model is None:
            return
        dialog = ExportDialog(self.session, self.export_folder(), self)
        if dialog.exec():
            self.export(dialog.path(), dialog.authors(), dialog.license())

    def export_folder(self) -> Path:
        """Where a package is proposed: beside the first image opened from a file, else in
        the home folder (not the working folder of napari's process)."""
        viewer = self.session.viewer
        for layer in viewer.layers if viewer is not None else ():
            if isinstance(layer, Image) and layer.source.path:
                return Path(layer.source.path).parent
        return Path.home()

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
        builtin = builtin_name(file) if shown else None
        if builtin is not None:
            self.file.setText(f"Built-in model: {builtin}, for {BUILTIN[builtin]}")
        else:
            self.file.setText(f"File: {wrappable(file)}" if shown else "")
        self.file.setToolTip(str(file) if shown else "")
        self.file.setVisible(bool(self.file.text()))
        self.save_button.setEnabled(model is not None)
        self.export_button.setEnabled(model is not None and self.exporting is None)
        self.load_button.setEnabled(not training)
        self.open_button.setEnabled(not training and self.recent.count() > 0)
        self.device.setEnabled(not training)


class ExportDialog(QDialog):
    """The package's file (proposed beside the image, named after the classes), its authors
    (required: a package names who made it) and its licence; the last authors and licence
    are proposed again."""

    def __init__(self, session: Session, folder: Path, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export as bioimage.io package")
        self.settings = session.settings
        classes = "-".join(_slug(name) for name in session.model.class_names[1:]) or "model"
        self.file = QLineEdit(str(folder / f"{classes}-unet.zip"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.author_names = QLineEdit(self.settings.get("export authors", ""))
        self.author_names.setPlaceholderText("Your name, co-authors, separated by commas")
        self.licenses = QComboBox(editable=True)
        self.licenses.addItems(LICENSES)
        self.licenses.setCurrentText(self.settings.get("export license", LICENSES[0]))
        self.licenses.setToolTip("An SPDX licence identifier: who may use the model, and how")
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        file = QHBoxLayout()
        file.addWidget(self.file, 1)
        file.addWidget(browse)
        form = QFormLayout(self)
        form.addRow("File", file)
        form.addRow("Authors", self.author_names)
        form.addRow("Licence", self.licenses)
        form.addRow(self.buttons)
        self.setMinimumWidth(480)
        for edit in (self.file, self.author_names):
            edit.textChanged.connect(self._check)
        self.licenses.currentTextChanged.connect(self._check)
        self._check()

    def path(self) -> Path:
        return Path(self.file.text().strip()).expanduser()

    def authors(self) -> list[str]:
        return [name.strip() for name in self.author_names.text().split(",") if name.strip()]

    def license(self) -> str:
        return self.licenses.currentText().strip()

    def accept(self) -> None:
        path = self.path()
        if path.exists() and not _replace(self, path):
            return
        self.settings["export authors"] = ", ".join(self.authors())
        self.settings["export license"] = self.license()
        super().accept()

    def _check(self, text=None) -> None:
        ready = bool(self.authors() and self.license()) and self.path().suffix.lower() == ".zip"
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ready)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export as", str(self.path()), PACKAGE_FILTER)
        if path:
            self.file.setText(path if path.lower().endswith(".zip") else f"{path}.zip")


def _replace(parent, path: Path) -> bool:
    buttons = QMessageBox.StandardButton
    answer = QMessageBox.question(
        parent, "Replace?", f"{path.name} exists. Replace it?", buttons.Yes | buttons.Cancel
    )
    return answer == buttons.Yes


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
