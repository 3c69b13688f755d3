"""The dock never loses or hides work: layers it makes are chosen, models survive closing the
dock and replacing them, and what it shows follows the current model."""

import pytest

pytest.importorskip("napari")

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QMessageBox

from napari_unet import PLUGIN
from napari_unet.engine.train import TrainSettings
from napari_unet.storage import autosave
from napari_unet.widgets import UNetWidget

from conftest import messages

TINY = TrainSettings(steps=5, width=4, depth=2, patch_size=32, batch_size=2, eval_every=5)
ENDLESS = TrainSettings(**{**vars(TINY), "steps": 100_000})
WAIT_MS = 60_000


@pytest.fixture
def demo(make_napari_viewer, monkeypatch):
    """What ``napari-unet demo`` does: the annotated sample, then the dock from the manifest;
    the dock trains tiny models. Returns (viewer, dock widget, U-Net widget)."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    monkeypatch.setattr(
        "napari_unet.widgets._train.TrainSection.settings",
        lambda self, resume=False: self._test_settings,
    )
    dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    widget.train._test_settings = TINY
    return viewer, dock_widget, widget


def train(qtbot, widget: UNetWidget, settings: TrainSettings = TINY) -> None:
    widget.train._test_settings = settings
    widget.train.start()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)


def predict(qtbot, widget: UNetWidget) -> None:
    widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)


def test_new_in_the_demo_dock_is_chosen_and_trains(demo, qtbot, notes):
    viewer, _, widget = demo
    widget.annotate.new_button.click()
    layer = viewer.layers[-1]
    assert layer.name == "nuclei annotations (2)"
    assert widget.annotate.annotations() is layer
    assert widget.annotate.annotations_combo.currentText() == layer.name
    layer.data_setitem((np.array([5, 6]), np.array([5, 6])), 1)
    layer.data_setitem((np.array([50, 51]), np.array([50, 51])), 2)
    train(qtbot, widget)
    assert "click New" not in messages(notes)
    assert widget.session.model is not None


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
    assert again.model.recent.count() == 1


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
    assert len(kept) == 2 and widget.model.recent.count() == 2
    assert widget.session.model_file == kept[0].path

    widget.model.recent.setCurrentIndex(1)
    widget.model.open_recent()
    assert widget.session.model_file == kept[1].path
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


def test_progress_and_plot_after_a_stopped_round(demo, qtbot):
    viewer, _, widget = demo
    widget.train._test_settings = ENDLESS
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 2, timeout=WAIT_MS)
    widget.train.stop()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    bar = widget.train.progress
    assert bar.value() == bar.maximum()
    plot = widget.train.plot
    assert len(plot.smoothed) == len(plot.steps) >= 2
    assert not hasattr(plot, "losses"), "single-step losses are not drawn"


def test_a_prediction_chosen_as_annotations_shows_the_class_names(demo, qtbot):
    viewer, _, widget = demo
    train(qtbot, widget)
    predict(qtbot, widget)
    classes = viewer.layers["nuclei: U-Net classes"]
    assert widget.annotate.annotations_combo.choose(classes)
    qtbot.waitUntil(lambda: widget.annotate.table.rowCount() == 2, timeout=5000)
    assert widget.annotate.table.item(1, 2).text() == "nucleus"


def test_predict_follows_the_annotated_image_and_a_row_picks_the_brush(demo, qtbot):
    viewer, _, widget = demo
    other = viewer.add_image(np.zeros((64, 64), np.float32), name="other")
    widget.annotate.image_combo.choose(other)
    assert widget.predict.image_combo.layer() is other
    assert widget.annotate.annotations() is None, "no annotations of this shape"
    assert "shape of 'other'" in widget.annotate.summary.text()

    widget.annotate.image_combo.choose(viewer.layers["nuclei"])
    layer = viewer.layers["nuclei annotations"]
    assert widget.annotate.annotations() is layer
    viewer.layers.selection.active = other
    layer.mode = "pan_zoom"
    table = widget.annotate.table
    table.selectRow(0)
    layer.mode = "pan_zoom"
    row = table.visualRect(table.model().index(0, 2)).center()
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=row)
    assert layer.selected_label == 1 and layer.mode == "paint"
    assert viewer.layers.selection.active is layer


def test_plot_without_validation_draws_no_dice(qtbot, make_napari_viewer):
    from napari_unet.engine.train import TrainProgress
    from napari_unet.widgets._plot import LossPlot

    plot = LossPlot()
    qtbot.addWidget(plot)
    for step in range(1, 4):
        progress = TrainProgress(step, 3, 1.0 / step, step, None, 1e6, None)
        progress.mean_loss = 0.5
        plot.add(progress)
    assert plot.smoothed == [0.5, 0.5, 0.5] and plot.dice == []
    plot.resize(300, 150)
    assert not plot.grab().isNull()
