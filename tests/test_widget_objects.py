"""Objects in the dock: paint each object with its own id, train from that, and predict
objects with a split setting."""

import pytest

pytest.importorskip("napari")

import numpy as np
from skimage.measure import label as connected_components

from napari_unet import PLUGIN
from napari_unet.engine.train import TrainSettings
from napari_unet.widgets import UNetWidget
from napari_unet.widgets._layers import PAINT_KEY, training_annotations

TINY = TrainSettings(steps=5, width=4, depth=2, patch_size=32, batch_size=2, eval_every=5)
WAIT_MS = 60_000


@pytest.fixture
def dock(make_napari_viewer, monkeypatch):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei")
    monkeypatch.setattr(
        "napari_unet.widgets._train.TrainSection.settings", lambda self, resume=False: TINY
    )
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    return viewer, widget


def objects_layer(widget: UNetWidget):
    widget.annotate.paint_mode.setCurrentIndex(widget.annotate.paint_mode.findData("objects"))
    return widget.annotate.new_annotations()


def test_objects_get_ids_of_their_own(dock, qtbot):
    viewer, widget = dock
    layer = objects_layer(widget)
    assert layer.metadata[PAINT_KEY] == "objects" and layer.data.dtype == np.uint16
    assert layer.selected_label == 2 and layer.mode == "paint"
    assert widget.annotate.new_object_button.isVisibleTo(widget)
    assert not widget.annotate.add_button.isVisibleTo(widget)
    layer.data_setitem((np.arange(10, 20), np.arange(10, 20)), 2)
    widget.annotate.new_object()
    assert layer.selected_label == 3
    layer.data_setitem((np.arange(10, 20), np.arange(11, 21)), 3)
    widget.annotate.new_object()
    assert layer.selected_label == 4
    qtbot.waitUntil(lambda: "2 objects" in widget.annotate.summary.text(), timeout=5000)
    assert widget.annotate.table.rowCount() == 2
    assert layer.colormap.map(2)[3] == 1 and not np.allclose(
        layer.colormap.map(2), layer.colormap.map(3)
    )


def test_touching_objects_train_as_a_class_with_a_gap(dock, qtbot):
    viewer, widget = dock
    layer = objects_layer(widget)
    data = np.zeros(layer.data.shape, np.uint16)
    data[100:140, 100:160] = 1
    data[110:130, 110:130] = 2
    data[110:130, 130:150] = 3
    layer.data = data
    classes = training_annotations(layer)
    assert set(np.unique(classes)) == {0, 1, 2}
    assert classes[120, 129] == 1 and classes[120, 130] == 1, "background between the two"
    assert connected_components(classes == 2).max() == 2
    assert np.array_equal(layer.data, data), "the painted objects are left as they are"

    widget.train.start()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    assert widget.session.model is not None and widget.session.model.n_classes == 2


def test_switching_the_paint_mode_keeps_the_pixels(dock):
    viewer, widget = dock
    layer = widget.annotate.new_annotations()
    assert layer.metadata[PAINT_KEY] == "classes"
    layer.data_setitem((np.array([3]), np.array([4])), 2)
    before = layer.data.copy()
    widget.annotate.paint_mode.setCurrentIndex(widget.annotate.paint_mode.findData("objects"))
    assert layer.metadata[PAINT_KEY] == "objects"
    assert np.array_equal(layer.data, before)


def test_objects_of_a_class_use_the_split_setting(dock, qtbot):
    viewer, widget = dock
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    widget.annotate.annotations_combo.choose(viewer.layers["nuclei annotations"])
    widget.train.start()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    widget.predict.instances.setChecked(True)
    widget.predict.split.setValue(0.0)
    widget.predict.min_size.setValue(0)
    assert widget.predict.objects().split == 0.0
    widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)
    classes = viewer.layers["nuclei: U-Net classes"].data
    objects = viewer.layers["nuclei: nucleus objects"].data
    assert objects.dtype == np.uint32
    assert np.array_equal(objects > 0, classes == 2)
    assert len(np.unique(objects[objects > 0])) == connected_components(classes == 2).max()
    assert widget.annotate.annotations_combo.choose(viewer.layers["nuclei: U-Net classes"])
    assert (
        viewer.layers["nuclei: nucleus objects"] not in widget.annotate.annotations_combo.layers()
    )
