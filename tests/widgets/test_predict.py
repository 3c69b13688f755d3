"""The prediction section: stacks and their current slice, layers kept when edited, copied
into annotations, cancelled, objects, and failures as notifications."""

import pytest

pytest.importorskip("napari")

import dataclasses

import dask.array as da
import numpy as np
import torch
from skimage.measure import label as connected_components

from napari_unet import PLUGIN
from napari_unet.engine import predict as predict_module
from napari_unet.engine.progress import drain
from napari_unet.engine.train import Trainer
from napari_unet.samples import nuclei
from napari_unet.widgets import UNetWidget
from napari_unet.widgets._layers import EDITED_KEY, OUTPUT_KEY
from napari_unet.widgets._predict import NOT_BLOBS, shared_border_fraction

from .dock_helpers import (
    TINY,
    WAIT_MS,
    copy_slice,
    long_stack,
    messages,
    objects_layer,
    predict,
    stack_image,
    tiny_model,
    train,
)


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
    filled = copy_slice(qtbot, widget)
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


def test_a_reused_result_follows_the_image_when_it_moved(dock, qtbot, tiny):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    predict(qtbot, widget)
    image = viewer.layers["nuclei"]
    image.scale, image.translate = (0.5, 0.5), (30, 40)
    predict(qtbot, widget)
    result = viewer.layers["nuclei: U-Net classes"]
    assert "nuclei: U-Net classes (2)" not in viewer.layers
    np.testing.assert_array_equal(result.scale, (0.5, 0.5))
    np.testing.assert_array_equal(result.translate, (30, 40))


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


def delete(viewer, layer):
    viewer.layers.remove(layer)


def replace_data(viewer, layer):
    layer.data = np.array(layer.data[:2])


@pytest.mark.parametrize(
    ("change", "said", "status"),
    [
        (
            delete,
            "Prediction cancelled: layer 'stack' was deleted",
            "Cancelled: the slices done so far are shown.",
        ),
        (
            replace_data,
            "Prediction cancelled: 'stack' got new data while it was predicted",
            "Cancelled: stack got new data; predict it again.",
        ),
    ],
)
def test_deleting_the_image_or_new_data_stops_prediction_and_ranks_nothing(
    make_napari_viewer, qtbot, notes, change, said, status
):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    layer = long_stack(viewer, widget)
    widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.progress.value() > 0, timeout=WAIT_MS)
    change(viewer, layer)
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)
    text = messages(notes)
    assert said in text
    assert "Next region" not in text and widget.predict.ranking is None
    assert widget.predict.status.text() == status


def test_deleting_the_image_before_the_first_slice_leaves_no_empty_layers(dock, qtbot, tiny):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    before = [layer.name for layer in viewer.layers if layer.name != "nuclei"]
    widget.predict.probabilities.setChecked(True)
    widget.predict.predict()
    viewer.layers.remove("nuclei")
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)
    assert [layer.name for layer in viewer.layers] == before
    assert "before the first slice" in widget.predict.status.text()


class OutOfMemory(torch.nn.Module):
    """A network that never fits on the device."""

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory")


def test_out_of_memory_predicting_is_a_notification(dock, qtbot, tiny, notes, monkeypatch):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    monkeypatch.setattr(predict_module, "prepare", lambda net, device: OutOfMemory())
    predict(qtbot, widget)
    assert "out of memory" in messages(notes)
    assert "failed" in widget.predict.status.text()
    assert "nuclei: U-Net classes" not in viewer.layers  # no empty layer left behind


def test_a_failed_prediction_keeps_the_earlier_result(dock, qtbot, tiny, notes, monkeypatch):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    predict(qtbot, widget)
    layer = viewer.layers["nuclei: U-Net classes"]
    earlier, metadata = layer.data.copy(), dict(layer.metadata)
    assert earlier.any()
    monkeypatch.setattr(predict_module, "prepare", lambda net, device: OutOfMemory())
    predict(qtbot, widget)
    assert "out of memory" in messages(notes)
    assert viewer.layers["nuclei: U-Net classes"] is layer
    np.testing.assert_array_equal(layer.data, earlier)
    assert layer.metadata == metadata


def test_objects_of_a_class_use_the_split_setting(objects_dock, qtbot):
    viewer, widget = objects_dock
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


def touching_pair(viewer, widget, objects_mode=False):
    """A class prediction of two touching discs (class 2) on background, as if predicted,
    and an empty annotation layer of its shape; returns the annotation layer."""
    y, x = np.mgrid[:64, :96]
    discs = ((y - 32) ** 2 + (x - 30) ** 2 < 18**2) | ((y - 32) ** 2 + (x - 64) ** 2 < 18**2)
    image = viewer.add_image(np.zeros((64, 96), np.float32), name="pair")
    widget.annotate.image_combo.choose(image)
    predicted = viewer.add_labels(
        np.where(discs, 2, 1).astype(np.uint8),
        name="pair: U-Net classes",
        metadata={OUTPUT_KEY: "classes"},
    )
    widget.predict._classes = predicted
    if objects_mode:
        return objects_layer(widget)
    return widget.annotate.new_annotations()


def test_copy_separates_touching_objects_by_background(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    annotations = touching_pair(viewer, widget)
    filled = copy_slice(qtbot, widget)
    assert filled == 64 * 96
    copied = annotations.data
    assert connected_components(copied == 2).max() == 2, "the two discs stay two objects"
    assert copied[32, 47] == 1, "a background line between them"
    assert "background (1) lines between touching objects" in messages(notes)


def test_copy_into_an_objects_layer_gives_each_object_an_id(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    annotations = touching_pair(viewer, widget, objects_mode=True)
    annotations.data_setitem((np.array([0]), np.array([0])), 5)  # an object painted before
    copy_slice(qtbot, widget)
    copied = annotations.data
    assert set(np.unique(copied)) == {1, 5, 6, 7}
    assert np.sum(copied == 6) > 500 and np.sum(copied == 7) > 500


def test_copy_runs_beside_the_window_and_keeps_what_is_painted_meanwhile(
    make_napari_viewer, qtbot, notes
):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    annotations = touching_pair(viewer, widget, objects_mode=True)
    widget.predict.copy_to_annotations()
    assert not widget.predict.copy_button.isEnabled(), "one copy at a time"
    annotations.data_setitem((np.array([32]), np.array([30])), 9)  # painted while it cuts
    qtbot.waitUntil(lambda: widget.predict.copying is None, timeout=WAIT_MS)
    copied = annotations.data
    assert copied[32, 30] == 9 and set(np.unique(copied)) == {1, 9, 10, 11}
    assert widget.predict.copy_button.isEnabled()

    notes.clear()
    other = widget.annotate.new_annotations()
    widget.predict.copy_to_annotations()
    viewer.layers.remove(other)
    qtbot.waitUntil(lambda: widget.predict.copying is None, timeout=WAIT_MS)
    assert f"Nothing copied: layer '{other.name}' was deleted meanwhile." in messages(notes)


def test_a_copy_with_nothing_to_fill_says_why(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    annotations = touching_pair(viewer, widget)
    assert copy_slice(qtbot, widget) > 0
    assert copy_slice(qtbot, widget) == 0
    assert "every predicted pixel of this slice is annotated already" in messages(notes)
    widget.predict._classes.data = np.zeros((64, 96), np.uint8)
    annotations.data = np.zeros((64, 96), np.uint8)
    assert copy_slice(qtbot, widget) == 0
    assert "this slice has no prediction. Predict it first." in messages(notes)


def test_multiscale_annotations_are_counted_and_never_pasted_into(
    make_napari_viewer, qtbot, notes
):
    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    touching_pair(viewer, widget)
    level = np.zeros((64, 96), np.uint8)
    level[:10], level[20:30, :40] = 1, 2
    layer = viewer.add_labels([level, level[::2, ::2]], name="from zarr", multiscale=True)
    assert widget.annotate.annotations_combo.choose(layer)
    qtbot.waitUntil(lambda: "1,360 pixels annotated" in widget.annotate.summary.text())
    widget.predict.copy_to_annotations()
    assert widget.predict.copying is None
    assert "'from zarr' is a multiscale layer, which napari cannot paint into" in messages(notes)
    assert np.array_equal(layer.data[0], level)


def test_objects_that_are_not_blobs_get_a_hint(make_napari_viewer, notes):
    tissue = np.repeat(np.repeat(np.arange(1, 17).reshape(4, 4), 16, axis=0), 16, axis=1)
    blobs = np.zeros((64, 64), np.uint32)
    blobs[5:15, 5:15], blobs[30:40, 30:40] = 1, 2
    blobs[15, 5:15] = 3  # a little touching here and there
    assert shared_border_fraction(tissue) > NOT_BLOBS > shared_border_fraction(blobs)

    viewer = make_napari_viewer()
    widget = UNetWidget(viewer)
    widget.session.set_model(tiny_model(nuclei()[:64, :64], np.where(blobs > 0, 2, 1)))
    widget.predict._instances_of = 2
    widget.predict._hint_if_not_blobs(blobs)
    assert messages(notes) == ""
    widget.predict._hint_if_not_blobs(tissue)
    assert "Objects of 'class 2': most objects share long edges" in messages(notes)
    assert "set Split objects to 0" in messages(notes)


def test_uncertainty_layer_and_next_region_take_the_user_to_unsure_pixels(dock, qtbot, tiny):
    viewer, widget = dock
    tiny(widget)
    train(qtbot, widget)
    section = widget.predict
    assert not section.next_button.isEnabled(), "nothing ranked before a prediction"
    section.uncertainty.setChecked(True)
    predict(qtbot, widget)
    unsure = viewer.layers["nuclei: uncertainty"]
    assert unsure.metadata[OUTPUT_KEY] == "uncertainty"
    assert unsure.data.min() >= 0 and unsure.data.max() <= 1 and unsure.data.std() > 0
    assert unsure not in list(section.image_combo.layers()), "not offered as an image"
    qtbot.waitUntil(lambda: section.next_button.isEnabled(), timeout=WAIT_MS)
    annotations = viewer.layers["nuclei annotations"]
    section.next_region()
    region = section.guide.shown[-1]
    assert viewer.layers["next region"].data[0].min(0)[0] == pytest.approx(region.y - 0.5)
    box = annotations.data[region.y : region.y + region.size, region.x : region.x + region.size]
    assert (box > 0).mean() <= 0.5, "an annotated region is never proposed"
    assert viewer.layers.selection.active is annotations and annotations.mode == "paint"
    assert "Next region" in section.status.text()


def test_a_volume_gets_objects_in_3d_and_a_series_per_slice(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer()
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 32) ** 2 < 12**2).astype(np.float32)
    stack = np.stack([disc * 200 + 20] * 3) + np.random.default_rng(0).normal(0, 5, (3, 64, 64))
    annotations = (disc + 1).astype(np.uint8)[None]
    settings = dataclasses.replace(TINY, steps=60)
    trainer = Trainer(stack[:1], annotations, settings=settings)
    widget = UNetWidget(viewer)
    widget.session.set_model(drain(trainer.run()))
    widget.session.device = "cpu"
    volume = viewer.add_image(stack, name="zstack", axis_labels=("z", "y", "x"), scale=(2, 1, 1))
    series = viewer.add_image(stack, name="movie", axis_labels=("t", "y", "x"))
    section = widget.predict
    section.instances.setChecked(True)
    section.split.setValue(0)

    section.image_combo.choose(volume)
    assert section.stack_row.isVisibleTo(section) and section.stack.currentData() is True
    assert section.z_spacing.value() == pytest.approx(2)
    predict(qtbot, widget)
    objects = viewer.layers["zstack: class 2 objects"].data
    ids = [set(np.unique(objects[z])) - {0} for z in range(3)]
    assert ids[0] and ids[0] == ids[1] == ids[2], "one nucleus, one id through z"
    assert "taken as a volume" in messages(notes)
    assert volume.metadata["napari_unet_stack"] == {"volume": True, "z_spacing": 2.0}

    section.image_combo.choose(series)
    assert section.stack.currentData() is False
    predict(qtbot, widget)
    objects = viewer.layers["movie: class 2 objects"].data
    ids = [set(np.unique(objects[z])) - {0} for z in range(3)]
    assert ids[0] and not ids[0] & ids[1], "objects per frame in a series"

    section.stack.setCurrentIndex(section.stack.findData(True))
    section.stack.activated.emit(section.stack.currentIndex())
    assert series.metadata["napari_unet_stack"]["volume"] is True, "the choice is kept"
    section.image_combo.choose(volume)
    section.image_combo.choose(series)
    assert section.stack.currentData() is True


def test_the_status_says_when_the_image_was_rescaled():
    from napari_unet.engine.predict import Prediction
    from napari_unet.widgets._predict import rescaled

    sentence = rescaled(Prediction(scale=0.5124, object_diameter=47.6))
    assert (
        sentence == " Objects measured 48 px across: predicted at ×0.51, the model's object size."
    )
    assert rescaled(Prediction(scale=1.0, object_diameter=24.0)) == ""
    assert rescaled(Prediction(scale=2.0)) == ""  # a factor given, not measured
    assert rescaled(Prediction()) == ""
