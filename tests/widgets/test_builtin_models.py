"""The built-in starting model in the dock: offered beside Recent, predicts before any
annotation, and Start fine-tunes it."""

import numpy as np
import pytest

from napari_unet.engine.train import TrainSettings
from napari_unet.models import builtin_path

from .dock_helpers import messages, predict, train

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
