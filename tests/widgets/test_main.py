"""The dock as a whole: found by the manifest, the loop from annotations to predictions and
back, errors as notifications, and its jobs stopped when the viewer closes."""

import pytest

pytest.importorskip("napari")

import numpy as np
import torch
from qtpy.QtCore import QPoint, QPointF, Qt, QThreadPool
from qtpy.QtGui import QWheelEvent
from qtpy.QtWidgets import QApplication

from napari_unet import PLUGIN
from napari_unet.engine.train import TrainSettings
from napari_unet.samples import nuclei
from napari_unet.widgets import UNetWidget
from napari_unet.widgets._main import VerticalScroll
from napari_unet.widgets._train import CONTINUE

from .dock_helpers import TINY, WAIT_MS, long_stack, messages, predict, tiny_model, train


def test_manifest_names_the_plugin(dock):
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest(PLUGIN)
    assert manifest.display_name == "U-Net loop"
    assert [w.display_name for w in manifest.contributions.widgets] == ["U-Net"]
    assert isinstance(dock[1], UNetWidget)


def test_annotate_train_predict(dock, qtbot, tiny, notes):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    model = widget.session.model
    assert model is not None and model.class_names == ["background", "nucleus"]
    assert len(widget.train.plot.steps) == 5 and widget.train.plot.dice
    assert "Training round done" in messages(notes)

    widget.predict.probabilities.setChecked(True)
    widget.predict.instances.setChecked(True)
    predict(qtbot, widget)
    classes = viewer.layers["nuclei: U-Net classes"]
    probability = viewer.layers["nuclei: P(nucleus)"]
    objects = viewer.layers["nuclei: nucleus objects"]
    assert classes.data.shape == (512, 512) and classes.data.dtype == np.uint8
    assert set(np.unique(classes.data)) <= {1, 2} and classes.data.min() == 1
    assert classes.colormap.map(1)[3] == 0 and classes.colormap.map(2)[3] > 0
    assert probability.data.dtype == np.float32 and probability.data.shape == (512, 512)
    assert probability.data.min() >= 0 and probability.data.max() <= 1
    assert objects.data.dtype == np.uint32 and objects.data.shape == (512, 512)

    tiny(widget, TrainSettings(**{**vars(TINY), "steps": 3}))
    train(qtbot, widget)
    assert len(widget.session.model.history) == 2
    assert len(widget.train.plot.steps) == 8 and widget.train.plot.steps[-1] == 8


def test_errors_are_notifications(make_napari_viewer, qtbot, tiny, notes):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    widget.annotate.new_annotations()
    widget.train.start()
    widget.predict.predict()
    assert "open an image first" in messages(notes).lower()
    assert "training needs an image" in messages(notes).lower()
    assert "prediction needs a model" in messages(notes).lower()

    image = nuclei()[:96, :96]
    viewer.add_image(image, name="small")
    one_class = viewer.add_labels(np.ones((96, 96), np.uint8), name="one class")
    widget.annotate.annotations_combo.choose(one_class)
    tiny(widget)
    train(qtbot, widget)
    assert "annotate background (1) and at least one class" in messages(notes)

    wrong = viewer.add_labels(np.ones((50, 50), np.uint8), name="wrong shape")
    assert not widget.annotate.annotations_combo.choose(wrong)
    assert wrong not in widget.annotate.annotations_combo.layers()

    annotations = np.zeros((96, 96), np.uint8)
    annotations[:40], annotations[40:50] = 1, 2
    widget.session.set_model(tiny_model(image, annotations))
    viewer.add_image(np.zeros((96, 96, 3), np.uint8), name="rgb", rgb=True)
    widget.predict.image_combo.choose(viewer.layers["rgb"])
    widget.predict.predict()
    assert "the model takes 1 channel(s) and the image has 3" in messages(notes)
    assert "train a new model on this one (Continue unticked)" in messages(notes)


def test_closing_the_viewer_mid_training_and_prediction_stops_the_workers(
    make_napari_viewer, qtbot, tiny, monkeypatch
):
    monkeypatch.setattr("napari_unet.widgets._train.ask_how_to_train", lambda *a, **k: CONTINUE)
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    widget = UNetWidget(viewer)
    viewer.window.add_dock_widget(widget)
    long_stack(viewer, widget)
    tiny(widget, TrainSettings(**{**vars(TINY), "steps": 100_000}))
    widget.train.start()
    widget.predict.predict()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 1, timeout=WAIT_MS)
    assert widget.predict.worker is not None
    viewer.close()
    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=10_000)


def wheel(widget, steps: int = -3) -> None:
    """Turn the mouse wheel over ``widget`` (negative: towards the user)."""
    centre = QPointF(widget.rect().center())
    event = QWheelEvent(
        centre,
        QPointF(widget.mapToGlobal(widget.rect().center())),
        QPoint(),
        QPoint(0, 120 * steps),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(widget, event)


def test_the_wheel_changes_no_value_of_a_control_without_focus(demo, qtbot, monkeypatch):
    viewer, _, widget = demo
    train(qtbot, widget)
    recent, duration = widget.model.recent, widget.train.duration
    assert recent.count() > 2
    index, value = recent.currentIndex(), duration.value()
    wheel(recent)
    wheel(duration)
    assert recent.currentIndex() == index and duration.value() == value
    assert recent.focusPolicy() == Qt.FocusPolicy.StrongFocus

    monkeypatch.setattr(duration, "hasFocus", lambda: True)  # clicked into, say
    wheel(duration, steps=1)
    assert duration.value() != value, "with focus, the wheel still works"


def test_a_dock_opened_again_keeps_its_settings_and_threads(demo, qtbot):
    viewer, dock_widget, widget = demo
    widget.train.unit.setCurrentText("steps")
    widget.train.duration.setValue(321)
    widget.predict.probabilities.setChecked(True)
    widget.predict.split.setValue(0.5)
    threads = torch.get_num_threads()
    viewer.window.remove_dock_widget(dock_widget)
    torch.set_num_threads(threads + 1)  # as if something took napari's core back
    _, again = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    assert again is not widget
    assert again.train.unit.currentText() == "steps" and again.train.duration.value() == 321
    assert again.predict.probabilities.isChecked() and again.predict.split.value() == 0.5
    assert torch.get_num_threads() == threads
    assert f"CPU ({threads} thread" in again.model.device.itemText(again.model.device.count() - 1)


def test_the_loop_fits_a_1366_by_768_screen(demo, qtbot):
    viewer, _, widget = demo
    window = viewer.window._qt_window
    window.showNormal()
    window.resize(1366, 768)
    qtbot.waitUntil(lambda: window.height() == 768, timeout=5000)
    train(qtbot, widget)  # the status and the plot filled in
    qtbot.wait(200)
    scroll = widget.findChild(VerticalScroll)
    viewport = scroll.viewport()
    copy = widget.predict.copy_button
    bottom = copy.mapTo(viewport, copy.rect().bottomLeft()).y()
    assert scroll.verticalScrollBar().value() == 0
    assert bottom < viewport.height(), "Annotate, Train and Predict show without scrolling"
