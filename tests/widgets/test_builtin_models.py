"""The built-in starting model in the dock: offered beside Recent, predicts before any
annotation, and Start fine-tunes it."""

import re

import numpy as np
import pytest
from skimage.measure import label as connected_components

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.predict import predict as run_predict
from napari_unet.engine.train import TrainSettings
from napari_unet.models import builtin_path
from napari_unet.samples import nuclei

from .dock_helpers import copy_slice, messages, predict, train

pytest.importorskip("napari")


def test_the_builtin_model_predicts_at_once_and_start_fine_tunes_it(
    dock, qtbot, monkeypatch, notes
):
    viewer, widget = dock
    recent = widget.model.recent
    assert recent.itemText(0) == "nuclei · built-in"
    assert recent.itemData(0) == builtin_path("nuclei")
    recent.setCurrentIndex(0)
    widget.model.open_recent()
    model = widget.session.model
    assert model is not None and model.class_names == ["background", "nucleus"]
    assert widget.train.resume.isChecked()  # Start fine-tunes it
    assert widget.model.file.text().startswith("Built-in model: nuclei, for fluorescence nuclei")

    predict(qtbot, widget)
    classes = [layer for layer in viewer.layers if layer.name.endswith("U-Net classes")]
    assert len(classes) == 1 and (np.asarray(classes[0].data) == 2).mean() > 0.1

    settings = TrainSettings(steps=3, patch_size=64, batch_size=2, report_every=0)
    monkeypatch.setattr(type(widget.train), "settings", lambda self, resume=False: settings)
    train(qtbot, widget)
    tuned = widget.session.model
    assert tuned is not model and len(tuned.history) == len(model.history) + 1
    assert tuned.config.depth == model.config.depth and tuned.class_names == model.class_names


def test_background_painted_over_a_few_places_is_enough_to_fine_tune(
    dock, qtbot, monkeypatch, notes
):
    viewer, widget = dock
    widget.model.recent.setCurrentIndex(0)
    widget.model.open_recent()
    model = widget.session.model
    annotations = widget.annotate.annotations()
    corrections = np.zeros(annotations.data.shape, np.uint8)
    corrections[200:240, 200:240] = 1
    annotations.data = corrections

    settings = TrainSettings(steps=3, patch_size=64, batch_size=2, report_every=0)
    monkeypatch.setattr(type(widget.train), "settings", lambda self, resume=False: settings)
    train(qtbot, widget)
    assert not [n for n in notes if "annotate" in str(n.message)], messages(notes)
    tuned = widget.session.model
    assert tuned is not model and len(tuned.history) == len(model.history) + 1
    assert tuned.history[-1]["settings"]["keep_start"] > 0


def test_nuclei_the_model_keeps_apart_painted_as_one_blob_get_a_note_and_apart_none(
    dock, qtbot, monkeypatch, notes
):
    viewer, widget = dock
    widget.model.recent.setCurrentIndex(0)
    widget.model.open_recent()
    settings = TrainSettings(steps=2, patch_size=64, batch_size=2, report_every=0)
    monkeypatch.setattr(type(widget.train), "settings", lambda self, resume=False: settings)
    # the model's own nuclei, some touching: painted as blobs (merged), or each apart
    instances = run_predict(widget.session.model, nuclei(), instances_of=2).instances
    annotations = widget.annotate.annotations()
    for painted, merged in (
        (np.where(instances > 0, 2, 1), True),
        (from_instances(instances), False),
    ):
        annotations.data = painted.astype(np.uint8)
        notes.clear()
        train(qtbot, widget)
        said = [str(n.message) for n in notes if "painted as one" in str(n.message)]
        count = widget.session.model.history[-1]["merged_regions"]
        assert bool(said) == merged == (count > 0), messages(notes)
        if merged:
            assert said[0].startswith(f"{count} painted region") and "Paint: objects" in said[0]
        assert ("merged objects (see notifications)" in widget.train.status.text()) == merged
        widget.model.recent.setCurrentIndex(0)
        widget.model.open_recent()  # the next round starts from the built-in model again
    # the blobs painted as objects, one id each: the advice is an id each, not the paint mode
    widget.annotate.paint_mode.setCurrentIndex(widget.annotate.paint_mode.findData("objects"))
    blobs = connected_components(instances > 0)
    annotations.data = np.where(blobs > 0, blobs + 1, 1).astype(np.uint16)
    notes.clear()
    train(qtbot, widget)
    said = [str(n.message) for n in notes if "painted as one" in str(n.message)]
    assert said and "own id (New object)" in said[0] and "Paint: objects" not in said[0]


def test_the_builtin_model_predicts_a_zoomed_image_at_its_object_size(dock, qtbot, notes):
    from scipy import ndimage

    from napari_unet.samples import nuclei

    viewer, widget = dock
    widget.model.recent.setCurrentIndex(0)
    widget.model.open_recent()
    assert widget.session.model.object_diameter is not None
    zoomed = ndimage.zoom(nuclei(), 2)
    layer = viewer.add_image(zoomed, name="zoomed")
    widget.predict.image_combo.choose(layer)
    predict(qtbot, widget)
    status = widget.predict.status.text()
    assert status.startswith("Predicted zoomed."), status
    assert re.search(r"Objects measured \d+ px across: predicted at ×0\.[456]\d", status), status
    classes = [layer for layer in viewer.layers if layer.name == "zoomed: U-Net classes"]
    assert len(classes) == 1 and classes[0].data.shape == zoomed.shape
    assert 0.1 < (np.asarray(classes[0].data) == 2).mean() < 0.6


def test_the_status_says_nothing_of_scale_at_the_models_own_size(dock, qtbot, notes):
    viewer, widget = dock
    widget.model.recent.setCurrentIndex(0)
    widget.model.open_recent()
    predict(qtbot, widget)
    status = widget.predict.status.text()
    assert status.startswith("Predicted ") and "predicted at" not in status, status


def test_fine_tuning_the_builtin_model_on_a_zoomed_image_says_at_what_scale(
    dock, qtbot, monkeypatch, notes
):
    from scipy import ndimage

    from napari_unet.samples import nuclei, nuclei_annotations

    viewer, widget = dock
    widget.model.recent.setCurrentIndex(0)
    widget.model.open_recent()
    corner = (slice(0, 512), slice(0, 512))  # a quarter of the zoomed sample: faster
    layer = viewer.add_image(ndimage.zoom(nuclei(), 2)[corner], name="zoomed")
    widget.annotate.image_combo.choose(layer)
    annotations = widget.annotate.new_annotations()
    annotations.data = ndimage.zoom(nuclei_annotations(rows=128), 2, order=0)[corner]
    settings = TrainSettings(steps=2, patch_size=64, batch_size=2, report_every=0)
    monkeypatch.setattr(type(widget.train), "settings", lambda self, resume=False: settings)
    train(qtbot, widget)
    tuned = widget.session.model
    assert 0.4 <= tuned.history[-1]["scale"] <= 0.65, messages(notes)
    status = widget.train.status.text()
    assert re.search(r" · at ×0\.[456]\d$", status, re.MULTILINE), status


def test_predict_first_then_next_region_and_copy_use_an_annotation_layer_of_their_own(
    objects_dock, qtbot, notes
):
    viewer, widget = objects_dock
    widget.model.recent.setCurrentIndex(0)
    widget.model.open_recent()
    predict(qtbot, widget)
    classes = widget.predict.last_classes()
    assert classes is not None and widget.annotate.annotations() is None  # not the prediction
    qtbot.waitUntil(lambda: widget.predict.next_button.isEnabled(), timeout=30_000)

    widget.predict.next_region()
    annotations = widget.annotate.annotations()
    assert annotations is not None and annotations is not classes
    assert not annotations.data.any() and annotations.mode == "paint"
    assert viewer.layers.selection.active is annotations
    assert widget.predict.status.text().startswith("Next region:")
    assert copy_slice(qtbot, widget) > 0
    assert (np.asarray(classes.data) > 0).all()  # the prediction itself is unchanged

    widget.annotate.annotations_combo.choose(classes)
    assert copy_slice(qtbot, widget) == 0
    assert "is the prediction itself" in messages(notes)
