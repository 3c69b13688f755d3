"""The annotation section: new annotations for an image or a stack, the class table, classes
or objects painted each with its own id, and the layers it chooses."""

import pytest

pytest.importorskip("napari")

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_unet.engine.annotations import MAX_CLASSES
from napari_unet.storage.loading import load_model
from napari_unet.widgets import UNetWidget
from napari_unet.widgets._layers import CLASS_NAMES_KEY, OUTPUT_KEY, PAINT_KEY

from .dock_helpers import messages, objects_layer, predict, stack_image, train


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


@pytest.mark.parametrize(
    ("shape", "said"),
    [
        ((2, 3, 64, 64), "'odd' has 4 axes (2, 3, 64, 64): the dock segments 2D images, stacks"),
        ((3, 40), "'odd' is 3×40 pixels per slice: the U-Net needs at least 8×8."),
    ],
)
def test_images_the_dock_cannot_segment_are_named_in_its_words(
    make_napari_viewer, notes, shape, said
):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros(shape, np.float32), name="odd")
    widget = UNetWidget(viewer)
    widget.annotate.image_combo.choose(image)
    assert widget.annotate.new_annotations() is None
    widget.train.start()
    widget.predict.image_combo.choose(image)
    widget.session.set_model(load_model("nuclei"))
    widget.predict.predict()
    text = messages(notes)
    for action in ("annotate", "train", "predict"):
        assert f"Cannot {action}: {said}" in text
    assert "channel axis" not in text.replace("its channel axis (napari-unet-loop", "")
    assert widget.train.worker is None and widget.predict.worker is None


def test_add_class_stops_at_the_most_classes_a_model_has(dock, notes):
    viewer, widget = dock
    layer = widget.annotate.annotations()
    for _ in range(MAX_CLASSES + 2):
        widget.annotate.add_class()
    assert len(layer.metadata[CLASS_NAMES_KEY]) == MAX_CLASSES
    assert f"A model has at most {MAX_CLASSES} classes" in messages(notes)


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


def test_objects_get_ids_of_their_own(objects_dock, qtbot):
    viewer, widget = objects_dock
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


def test_switching_the_paint_mode_keeps_the_pixels(objects_dock):
    viewer, widget = objects_dock
    layer = widget.annotate.new_annotations()
    assert layer.metadata[PAINT_KEY] == "classes"
    layer.data_setitem((np.array([3]), np.array([4])), 2)
    before = layer.data.copy()
    widget.annotate.paint_mode.setCurrentIndex(widget.annotate.paint_mode.findData("objects"))
    assert layer.metadata[PAINT_KEY] == "objects"
    assert np.array_equal(layer.data, before)


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


def test_new_says_what_it_does_before_napari_adds_the_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(stack_image(), name="stack")
    widget = UNetWidget(viewer)
    seen = []

    def inserting(event):
        seen.append((widget.annotate.summary.text(), QApplication.overrideCursor()))

    viewer.layers.events.inserting.connect(inserting)
    widget.annotate.new_annotations()
    ((text, cursor),) = seen
    assert text == "Creating 'stack annotations' over 3 slices…"
    assert cursor is not None and cursor.shape() == Qt.CursorShape.WaitCursor
    assert QApplication.overrideCursor() is None


def test_the_buttons_below_stay_put_when_annotations_appear(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(stack_image(), name="stack")
    widget = UNetWidget(viewer)
    section = widget.annotate  # of fixed height: the sections below move when it grows
    before = section.sizeHint().height()
    widget.annotate.new_annotations()
    qtbot.waitUntil(lambda: "pixels" in widget.annotate.summary.text(), timeout=5000)
    assert widget.annotate.table.rowCount() == 2
    assert section.sizeHint().height() == before


def test_probabilities_are_not_images_to_annotate(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_image(stack_image(), name="stack")
    viewer.add_image(
        np.zeros((3, 96, 96), np.float32),
        name="stack: P(cell)",
        metadata={OUTPUT_KEY: "probability"},
    )
    widget = UNetWidget(viewer)
    names = [layer.name for layer in widget.annotate.image_combo.layers()]
    assert names == ["stack"]
    assert [layer.name for layer in widget.predict.image_combo.layers()] == ["stack"]


def test_only_one_class_painted_asks_for_background(make_napari_viewer, qtbot, tiny, notes):
    viewer = make_napari_viewer()
    viewer.add_image(stack_image()[0], name="image")
    widget = UNetWidget(viewer)
    layer = widget.annotate.new_annotations()
    layer.data_setitem((np.arange(10), np.arange(10)), 2)
    tiny(widget)
    train(qtbot, widget)
    assert "annotation ids skip 1: paint some background (1) too" in messages(notes)
