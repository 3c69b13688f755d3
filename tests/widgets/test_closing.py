"""napari closing while a round trains: the round is kept before the window goes, and a shown
window asks first, naming the annotation layers in no file."""

import pytest

pytest.importorskip("napari")

from qtpy.QtWidgets import QMessageBox

from napari_unet import PLUGIN
from napari_unet.storage import autosave
from napari_unet.widgets._closing import keep_the_round

from .dock_helpers import ENDLESS, WAIT_MS, messages


def start_endless(demo, qtbot):
    viewer, _, widget = demo
    widget.train._test_settings = ENDLESS
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 2, timeout=WAIT_MS)
    assert autosave.kept() == []
    return viewer, widget


def test_closing_the_viewer_mid_training_keeps_the_round(demo, qtbot, notes, make_napari_viewer):
    viewer, widget = start_endless(demo, qtbot)
    viewer.close()
    (kept,) = autosave.kept()  # written before close() returned: the process may end now
    assert kept.label.endswith("nucleus · 1 round")
    assert widget.session.model_file == kept.path
    assert widget.session.model.history[-1]["steps"] < ENDLESS.steps
    assert f"Kept as {kept.path.name} in {kept.path.parent}" in messages(notes)
    assert "was deleted" in messages(notes)

    _, again = make_napari_viewer().window.add_plugin_dock_widget(PLUGIN, "U-Net")
    assert again.model.recent.itemData(again.model.first_kept) == kept.path


def test_closing_the_window_mid_training_keeps_the_round(demo, qtbot, notes):
    viewer, widget = start_endless(demo, qtbot)
    viewer.window._qt_window.close()
    (kept,) = autosave.kept()
    assert "Training round stopped (napari is closing)" in messages(notes)
    assert f"Kept as {kept.path.name}" in messages(notes)
    assert widget.session.job is None and not widget.session.training


def test_napari_quitting_the_worker_still_keeps_the_round(demo, qtbot, notes):
    viewer, widget = start_endless(demo, qtbot)
    widget.train.worker.quit()  # what napari does to every worker when its window closes
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    (kept,) = autosave.kept()
    assert widget.session.model_file == kept.path
    assert "Training round stopped (napari is closing)" in messages(notes)


def test_a_shown_window_asks_and_names_the_annotations_in_no_file(demo, qtbot, notes, monkeypatch):
    viewer, widget = start_endless(demo, qtbot)
    viewer.window.show()
    asked = []

    def cancel(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.Cancel

    monkeypatch.setattr(QMessageBox, "question", cancel)
    viewer.window._qt_window.close()
    assert viewer.window._qt_window.isVisible() and widget.session.training
    assert "training round is running" in asked[0]
    assert "Annotation layers in no file: 'nuclei annotations'" in asked[0]
    assert autosave.kept() == []
    widget.train.stop()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)


def test_a_round_that_cannot_end_in_time_is_not_claimed_kept(demo, qtbot, notes, monkeypatch):
    viewer, widget = start_endless(demo, qtbot)
    monkeypatch.setattr("napari_unet.widgets._session.FINISH_SECONDS", 0)
    keep_the_round(widget.session)  # what closing the window does
    assert "that round is not kept" in messages(notes)
    qtbot.waitUntil(lambda: widget.session.job is None, timeout=WAIT_MS)
