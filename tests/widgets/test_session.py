"""The session of a viewer: one per viewer, it outlives the dock and keeps its model, and a
model in no file is replaced only when the user says so."""

import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QMessageBox

from napari_unet import PLUGIN
from napari_unet.storage import autosave
from napari_unet.storage.model_files import save_model
from napari_unet.widgets._session import TRAINED, Round, confirm_replace, session_of

from .dock_helpers import ENDLESS, WAIT_MS, messages


def test_closing_the_dock_while_training_keeps_the_model(demo, qtbot, notes):
    viewer, dock_widget, widget = demo
    widget.train._test_settings = ENDLESS
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 2, timeout=WAIT_MS)
    session = widget.session
    viewer.window.remove_dock_widget(dock_widget)
    qtbot.waitUntil(lambda: not session.training, timeout=WAIT_MS)
    assert session.model is not None and session.model.history[-1]["steps"] < 100_000
    assert "dock was closed" in messages(notes)
    (kept,) = autosave.kept()
    assert session.model_file == kept.path

    _, again = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    assert again is not widget and again.session is session
    assert "No model yet" not in again.model.description.text()
    assert again.train.resume.isChecked()
    assert again.model.recent.count() - again.model.first_kept == 1


def test_each_viewer_has_one_session(make_napari_viewer):
    first, second = make_napari_viewer(), make_napari_viewer()
    session = session_of(first)
    assert session_of(first) is session and session.viewer is first
    assert session_of(second) is not session and session_of(second).viewer is second
    assert session.model is None and session.device == "auto" and not session.training


def test_a_kept_round_becomes_the_model_and_a_problem_is_a_warning(
    make_napari_viewer, trained, notes
):
    session = session_of(make_napari_viewer())
    replaced = []
    session.model_replaced.connect(replaced.append)
    session.keep_round(Round(None, TRAINED))
    assert session.model is None and replaced == []
    session.keep_round(Round(trained, TRAINED, None, "the disk is full"))
    assert session.model is trained and session.model_file is None and replaced == [TRAINED]
    assert "It is in no file (the disk is full): Model › Save… keeps it." in messages(notes)


def test_only_a_model_in_no_file_needs_consent_to_be_replaced(
    make_napari_viewer, trained, tmp_path, monkeypatch
):
    session = session_of(make_napari_viewer())
    asked = []

    def cancel(*args, **kwargs):
        asked.append(args)
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", cancel)
    assert confirm_replace(session) and asked == []
    session.set_model(trained)
    assert not confirm_replace(session) and len(asked) == 1
    path = save_model(trained, tmp_path / "kept.safetensors")
    session.set_model(trained, file=path)
    assert confirm_replace(session) and len(asked) == 1
    path.unlink()
    assert not confirm_replace(session) and len(asked) == 2
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert confirm_replace(session)
