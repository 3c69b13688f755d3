"""The U-Net dock in a real napari viewer: annotate, train, predict, correct, and the errors."""

import pytest

pytest.importorskip("napari")

import time

import dask.array as da
import numpy as np
import torch
from qtpy.QtCore import QThreadPool, QTimer

from napari_unet import PLUGIN
from napari_unet.engine import predict as predict_module
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei
from napari_unet.widgets import UNetWidget
from napari_unet.widgets._layers import CLASS_NAMES_KEY, EDITED_KEY

from conftest import messages

# report_every=0: a point on the plot per step on any device (a GPU reports every 0.1 s)
TINY = TrainSettings(
    steps=5, width=4, depth=2, patch_size=32, batch_size=2, eval_every=5, report_every=0
)
WAIT_MS = 60_000


@pytest.fixture
def dock(make_napari_viewer):
    """A viewer with the annotated nuclei sample and the U-Net dock, found by the manifest."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    return viewer, widget


@pytest.fixture
def tiny(monkeypatch):
    """Make the dock train a tiny model for a few steps."""

    def use(widget: UNetWidget, settings: TrainSettings = TINY) -> None:
        monkeypatch.setattr(widget.train, "settings", lambda resume=False: settings)

    return use


def tiny_model(image, annotations, channel_axis=None):
    trainer = Trainer(image, annotations, channel_axis=channel_axis, settings=TINY)
    run = trainer.run()
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value


def train(qtbot, widget: UNetWidget) -> None:
    widget.train.start()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)


def predict(qtbot, widget: UNetWidget, current_slice: bool = False) -> None:
    if current_slice:
        widget.predict.predict_slice()
    else:
        widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)


def stack_image():
    """Three 96x96 crops of the nuclei sample as a (Z, Y, X) stack."""
    image = nuclei()
    return np.stack([image[:96, :96], image[100:196, 100:196], image[300:396, 200:296]])


def long_stack(viewer, widget: UNetWidget, slices: int = 200):
    """A stack long enough to cancel, with a tiny model for it; returns the image layer."""
    stack = np.stack([nuclei()[:96, :96]] * slices)
    annotations = np.zeros(stack.shape, np.uint8)
    annotations[0, :40], annotations[0, 40:50] = 1, 2
    widget.session.set_model(tiny_model(stack[:1], annotations[:1]))
    widget.session.device = "cpu"  # slice by slice: a GPU predicts all 200 in one batch
    layer = viewer.add_image(stack, name="stack")
    widget.predict.image_combo.choose(layer)
    return layer


def test_manifest_names_the_plugin(dock):
    from npe2 import PluginManager

    manifest = PluginManager.instance().get_manifest(PLUGIN)
    assert manifest.display_name == "U-Net loop"
    assert [w.display_name for w in manifest.contributions.widgets] == ["U-Net"]
    assert isinstance(dock[1], UNetWidget)


def test_new_annotations_match_a_stack_and_count_classes(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(stack_image(), name="stack", scale=(2, 1, 1))
    widget = UNetWidget(viewer)
    layer = widget.annotate.new_annotations()
    assert layer.data.shape == (3, 96, 96) and layer.data.dtype == np.uint8
    assert tuple(layer.scale) == (2, 1, 1)
    assert layer.mode == "paint" and layer.selected_label == 2
    assert layer.metadata[CLASS_NAMES_KEY] == ["background", "class 2"]
    assert widget.annotate.annotations() is layer
    assert widget.annotate.table.rowCount() == 2

    layer.data_setitem((np.array([1, 1, 2]), np.array([5, 6, 7]), np.array([5, 6, 7])), 2)
    layer.data_setitem((np.array([1]), np.array([9]), np.array([9])), 1)
    qtbot.waitUntil(lambda: widget.annotate.table.item(1, 3).text() == "3", timeout=5000)
    assert widget.annotate.table.item(1, 4).text() == "2"
    assert widget.annotate.table.item(0, 3).text() == "1"
    assert "in 2 of 3 slices" in widget.annotate.summary.text()


def test_rgb_image_gets_2d_annotations(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((40, 50, 3), np.uint8), rgb=True)
    widget = UNetWidget(viewer)
    assert widget.annotate.new_annotations().data.shape == (40, 50)


def test_class_names_are_editable(dock):
    viewer, widget = dock
    table, layer = widget.annotate.table, viewer.layers["nuclei annotations"]
    assert table.item(1, 2).text() == "nucleus"
    table.item(1, 2).setText("nuclei")
    assert layer.metadata[CLASS_NAMES_KEY] == ["background", "nuclei"]
    widget.annotate.add_class()
    assert table.rowCount() == 3 and layer.selected_label == 3
    table.selectRow(0)
    assert layer.selected_label == 1


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


def test_stack_predicts_every_slice_and_the_current_one(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    stack = stack_image()
    annotations = np.zeros(stack.shape, np.uint8)
    annotations[0, :40] = 1
    annotations[0, 40:50] = 2
    viewer.add_image(da.from_array(stack, chunks=(1, 96, 96)), name="stack")
    widget = UNetWidget(viewer)
    widget.session.set_model(tiny_model(stack, annotations))

    viewer.dims.set_current_step(0, 2)
    predict(qtbot, widget, current_slice=True)
    classes = viewer.layers["stack: U-Net classes"]
    assert classes.data.shape == (3, 96, 96)
    assert classes.data[2].min() >= 1 and not classes.data[:2].any()

    predict(qtbot, widget)
    assert viewer.layers["stack: U-Net classes"] is classes
    assert classes.data.min() >= 1
    assert widget.predict.progress.value() == widget.predict.progress.maximum()


def test_copy_prediction_into_annotations(dock, qtbot, tiny):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    predict(qtbot, widget)
    annotations = viewer.layers["nuclei annotations"]
    before = annotations.data.copy()
    filled = widget.predict.copy_to_annotations()
    assert filled == int((before == 0).sum())
    assert np.array_equal(annotations.data[before > 0], before[before > 0])
    assert annotations.data.min() >= 1
    annotations.undo()
    assert np.array_equal(annotations.data, before)


def test_an_edited_prediction_is_kept(dock, qtbot, tiny, notes):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    predict(qtbot, widget)
    first = viewer.layers["nuclei: U-Net classes"]
    predict(qtbot, widget)
    assert viewer.layers["nuclei: U-Net classes"] is first
    first.paint((10, 10), 2)
    assert first.metadata[EDITED_KEY]
    edited = first.data.copy()
    predict(qtbot, widget)
    assert np.array_equal(first.data, edited)
    assert "nuclei: U-Net classes (2)" in viewer.layers
    assert "is kept as it is" in messages(notes)


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
    worker = widget.model.export(tmp_path / "nuclei.zip")
    assert not widget.model.export_button.isEnabled(), "one export at a time"
    qtbot.waitUntil(lambda: widget.model.exporting is None, timeout=WAIT_MS)
    assert worker is not None and (tmp_path / "nuclei.zip").stat().st_size > 0
    assert "Exported nuclei.zip" in messages(notes)
    assert widget.model.export_button.isEnabled()
    widget.session.set_model(None)
    widget.model.load(tmp_path / "nuclei.zip")
    assert widget.session.model.class_names == ["background", "nucleus"]


def test_stop_keeps_the_best_weights(dock, qtbot, tiny):
    viewer, widget = dock
    tiny(widget, TrainSettings(**{**vars(TINY), "steps": 100_000}))
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 3, timeout=WAIT_MS)
    widget.train.stop()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    assert widget.session.model is not None
    assert widget.session.model.history[-1]["steps"] < 100_000


def test_cancel_prediction(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    long_stack(viewer, widget)
    widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.progress.value() > 0, timeout=WAIT_MS)
    widget.predict.cancel()
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)
    assert "Cancelled" in widget.predict.status.text()
    assert not viewer.layers["stack: U-Net classes"].data[-1].any()


def test_deleting_the_image_stops_prediction(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    layer = long_stack(viewer, widget)
    widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.progress.value() > 0, timeout=WAIT_MS)
    viewer.layers.remove(layer)
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)
    assert "Prediction cancelled: layer 'stack' was deleted" in messages(notes)


def test_closing_the_viewer_mid_training_and_prediction_stops_the_workers(
    make_napari_viewer, qtbot, tiny
):
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


def test_training_keeps_napari_responsive(dock, qtbot, tiny):
    """The longest gap between 10 ms QTimer ticks while the default model trains."""
    viewer, widget = dock
    from napari_unet.widgets import _jobs

    _jobs.warm_up().join()
    tiny(widget, TrainSettings(steps=None, time_limit=4.0))
    gaps, last = [], [time.perf_counter()]

    def tick():
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    train(qtbot, widget)
    timer.stop()
    assert len(widget.train.plot.steps) > 1
    assert max(gaps) < 0.1, f"longest main-thread stall {max(gaps) * 1000:.0f} ms"


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
    assert "expects 1 channel(s) but the image has 3" in messages(notes)
    notes.clear()
    widget.annotate.image_combo.choose(viewer.layers["rgb"])
    widget.annotate.annotations_combo.choose(widget.annotate.new_annotations())
    widget.train.start()
    assert "expects 1 channel(s) but the image has 3" in messages(notes)


def test_deleting_a_layer_stops_training(dock, qtbot, tiny, notes):
    viewer, widget = dock
    tiny(widget, TrainSettings(**{**vars(TINY), "steps": 100_000}))
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 1, timeout=WAIT_MS)
    viewer.layers.remove("nuclei annotations")
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    assert "was deleted" in messages(notes)


class OutOfMemory(torch.nn.Module):
    """A network that never fits on the device."""

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory")


def test_out_of_memory_training_is_a_notification(dock, qtbot, tiny, notes, monkeypatch):
    viewer, widget = dock
    tiny(widget)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(Trainer, "_step", out_of_memory)
    train(qtbot, widget)
    assert "out of memory" in messages(notes)
    assert widget.session.model is None
    assert "failed" in widget.train.status.text()


def test_out_of_memory_predicting_is_a_notification(dock, qtbot, tiny, notes, monkeypatch):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    monkeypatch.setattr(predict_module, "prepare", lambda net, device: OutOfMemory())
    predict(qtbot, widget)
    assert "out of memory" in messages(notes)
    assert "failed" in widget.predict.status.text()
