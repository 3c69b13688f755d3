"""The model section: save, load, export and the recently kept models; a model in no file is
replaced only when the user says so."""

import re

import pytest

pytest.importorskip("napari")

import zipfile
from pathlib import Path

import numpy as np
from napari.layers._source import layer_source
from qtpy.QtWidgets import QDialogButtonBox, QMessageBox

from napari_unet.storage import autosave
from napari_unet.widgets._model import ExportDialog

from .dock_helpers import WAIT_MS, messages, predict, train


def test_save_and_load_model(dock, qtbot, tiny, tmp_path, notes):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    path = widget.model.save(tmp_path / "nuclei.safetensors")
    widget.session.set_model(None)
    widget.model.load(path)
    assert widget.session.model.class_names == ["background", "nucleus"]
    (tmp_path / "junk.safetensors").write_bytes(b"not a model")
    widget.model.load(tmp_path / "junk.safetensors")
    assert "Cannot load the model" in messages(notes)


def test_export_a_bioimageio_package_and_load_it_back(dock, qtbot, tiny, tmp_path, notes):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    worker = widget.model.export(tmp_path / "nuclei.zip", ["Ada Lovelace"], "MIT")
    assert not widget.model.export_button.isEnabled(), "one export at a time"
    qtbot.waitUntil(lambda: widget.model.exporting is None, timeout=WAIT_MS)
    assert worker is not None and (tmp_path / "nuclei.zip").stat().st_size > 0
    assert "Exported nuclei.zip" in messages(notes)
    assert widget.model.export_button.isEnabled()
    with zipfile.ZipFile(tmp_path / "nuclei.zip") as package:
        description = package.read("rdf.yaml").decode()
    assert "Ada Lovelace" in description and "MIT" in description
    widget.session.set_model(None)
    widget.model.load(tmp_path / "nuclei.zip")
    assert widget.session.model.class_names == ["background", "nucleus"]


def test_every_round_is_kept_and_loading_asks_only_for_a_model_in_no_file(
    demo, qtbot, monkeypatch, notes
):
    viewer, _, widget = demo
    train(qtbot, widget)
    first = widget.session.model
    widget.train.resume.setChecked(False)
    train(qtbot, widget)
    assert widget.session.model is not first
    assert widget.train.resume.isChecked(), "Continue is ticked again for the new model"
    kept = autosave.kept()
    assert len(kept) == 2 and widget.model.recent.count() - widget.model.first_kept == 2
    assert widget.session.model_file == kept[0].path

    widget.model.recent.setCurrentIndex(widget.model.first_kept + 1)
    widget.model.open_recent()
    assert widget.session.model_file == kept[1].path
    assert widget.model.recent.currentData() == kept[1].path, "Recent shows the loaded model"
    assert widget.train.plot.steps == [], "the plot of the replaced model is cleared"

    asked = []

    def cancel(*args, **kwargs):
        asked.append(args)
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", cancel)
    unsaved = widget.session.model
    widget.session.set_model(unsaved, file=None)
    widget.model.load(kept[0].path)
    widget.train.resume.setChecked(False)
    widget.train.start()
    assert len(asked) == 2
    assert widget.session.model is unsaved and widget.train.worker is None


def test_save_replaces_a_file_the_dialog_confirmed_and_names_it_briefly(
    demo, qtbot, tmp_path, notes
):
    viewer, _, widget = demo
    train(qtbot, widget)
    path = tmp_path / "a" / "long" / "folder" / "nuclei.safetensors"
    assert widget.model.save(path) == path
    assert widget.model.save(path) == path
    assert "Model saved as nuclei.safetensors" in messages(notes)
    assert str(path.parent) not in messages(notes)
    assert widget.session.model_file == path
    assert str(path) == widget.model.file.toolTip()


def test_export_proposes_a_file_beside_the_image_and_asks_for_authors(demo, qtbot, tmp_path):
    viewer, _, widget = demo
    train(qtbot, widget)
    assert widget.model.export_folder() == Path.home(), "the sample is in no file"
    with layer_source(path=str(tmp_path / "cells.tif")):
        viewer.add_image(np.zeros((8, 8)), name="cells")
    assert widget.model.export_folder() == tmp_path

    dialog = ExportDialog(widget.session, widget.model.export_folder())
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert dialog.path() == tmp_path / "nucleus-unet.zip"
    assert dialog.authors() == [] and not ok.isEnabled(), "no package without an author"
    dialog.author_names.setText("Ada Lovelace, Alan Turing")
    dialog.licenses.setCurrentText("MIT")
    assert ok.isEnabled()
    assert dialog.authors() == ["Ada Lovelace", "Alan Turing"] and dialog.license() == "MIT"
    dialog.accept()
    again = ExportDialog(widget.session, tmp_path)
    assert again.author_names.text() == "Ada Lovelace, Alan Turing"
    assert again.license() == "MIT"


def test_opened_rounds_and_models_in_use_are_never_pruned(demo, qtbot, monkeypatch):
    viewer, _, widget = demo
    train(qtbot, widget)
    first = widget.session.model_file
    predict(qtbot, widget)  # result layers of the first round
    widget.train.resume.setChecked(False)
    train(qtbot, widget)
    second = widget.session.model_file
    monkeypatch.setattr(autosave, "budget", lambda: 1)  # every older round over budget
    widget.train.resume.setChecked(False)
    train(qtbot, widget)
    assert first.exists(), "a result layer's model stays"
    assert second.exists(), "the model the round started from stays"
    widget.model.recent.setCurrentIndex(widget.model._index_of(second))
    widget.model.open_recent()
    assert [k.path for k in autosave.kept() if k.pinned] == [second]
    for layer in list(viewer.layers):
        if "U-Net" in layer.name:
            viewer.layers.remove(layer)
    widget.model.recent.setCurrentIndex(widget.model._index_of(first))
    widget.model.open_recent()
    widget.train.resume.setChecked(False)
    train(qtbot, widget)
    assert first.exists() and second.exists(), "rounds the user opened stay"


def test_the_space_for_kept_rounds_is_shown_and_changed(demo, qtbot):
    _, _, widget = demo
    train(qtbot, widget)
    assert re.fullmatch(r"1 round, \d+ MB of", widget.model.kept.text())  # ... [500 MB]
    widget.model.budget.setValue(42)
    widget.model.budget.editingFinished.emit()
    assert autosave.budget() == 42 * 2**20
    assert "of 42 MB kept" in widget.model.kept.toolTip()
