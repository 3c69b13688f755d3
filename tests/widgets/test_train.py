"""The training section: rounds stopped, ended by a deleted layer or out of memory, and their
progress and plot."""

import pytest

pytest.importorskip("napari")

import numpy as np
import torch

from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei
from napari_unet.storage import autosave
from napari_unet.widgets._layers import set_class_names
from napari_unet.widgets._train import CONTINUE, NEW

from .dock_helpers import ENDLESS, TINY, WAIT_MS, messages, predict, train


def test_stop_keeps_the_best_weights(dock, qtbot, tiny):
    viewer, widget = dock
    tiny(widget, TrainSettings(**{**vars(TINY), "steps": 100_000}))
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 3, timeout=WAIT_MS)
    widget.train.stop()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    assert widget.session.model is not None
    assert widget.session.model.history[-1]["steps"] < 100_000


def test_deleting_a_layer_stops_training(dock, qtbot, tiny, notes):
    viewer, widget = dock
    tiny(widget, TrainSettings(**{**vars(TINY), "steps": 100_000}))
    widget.train.start()
    qtbot.waitUntil(lambda: len(widget.train.plot.steps) >= 1, timeout=WAIT_MS)
    viewer.layers.remove("nuclei annotations")
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    assert "was deleted" in messages(notes)


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


def other_dataset(viewer, widget, image, name="other", class_name="cell"):
    """``image`` chosen under Annotate, with a new annotation layer whose class 2 is named
    ``class_name``, background and class painted."""
    layer = viewer.add_image(image, name=name, rgb=image.ndim == 3)
    widget.annotate.image_combo.choose(layer)
    annotations = widget.annotate.new_annotations()
    set_class_names(annotations, ["background", class_name])
    data = np.zeros(annotations.data.shape, annotations.data.dtype)
    data[:40], data[40:60, :48] = 1, 2
    annotations.data = data
    return annotations


@pytest.fixture
def asked(monkeypatch):
    """The questions the dock asks before continuing a model, answered from ``answers``."""
    questions, answers = [], []

    def ask(parent, text, can_continue):
        questions.append((text, can_continue))
        return answers.pop(0)

    monkeypatch.setattr("napari_unet.widgets._train.ask_how_to_train", ask)
    return questions, answers


def test_continuing_on_other_classes_asks_and_takes_their_names(demo, qtbot, notes, asked):
    viewer, _, widget = demo
    train(qtbot, widget)
    assert widget.train.resume.isChecked()
    questions, answers = asked
    other_dataset(viewer, widget, nuclei()[128:256, 128:256])
    answers.append(CONTINUE)
    train(qtbot, widget)
    ((text, can_continue),) = questions
    assert can_continue
    assert "it was trained on 'nuclei', not on 'other'" in text
    assert "id 2 is 'cell' in 'other annotations', 'nucleus' in the model" in text
    model = widget.session.model
    assert model.class_names == ["background", "cell"] and len(model.history) == 2
    assert autosave.kept()[0].label.endswith("cell · 2 rounds")

    widget.predict.probabilities.setChecked(True)
    predict(qtbot, widget)
    assert "other: P(cell)" in viewer.layers


def test_a_new_model_for_other_classes_unticks_continue(demo, qtbot, asked):
    viewer, _, widget = demo
    train(qtbot, widget)
    questions, answers = asked
    other_dataset(viewer, widget, nuclei()[128:256, 128:256], class_name="nucleus")
    answers.append(NEW)
    train(qtbot, widget)
    assert "trained on 'nuclei', not on 'other'" in questions[0][0]
    assert len(widget.session.model.history) == 1, "a new model, not the first continued"
    assert widget.session.model.class_names == ["background", "nucleus"]


def test_renaming_the_image_keeps_it_the_image_the_model_was_trained_on(demo, qtbot, asked):
    viewer, _, widget = demo
    train(qtbot, widget)
    viewer.layers["nuclei"].name = "nuclei, renamed"
    train(qtbot, widget)
    questions, _ = asked
    assert questions == [], "a renamed image is still the one the model was trained on"
    assert len(widget.session.model.history) == 2


def test_other_channels_never_continue(demo, qtbot, notes, asked):
    viewer, _, widget = demo
    train(qtbot, widget)
    questions, answers = asked
    rgb = np.repeat(nuclei()[:128, :128, None], 3, axis=2)
    other_dataset(viewer, widget, rgb, name="rgb")
    answers.append("")
    widget.train.start()
    ((text, can_continue),) = questions
    assert not can_continue
    assert "takes 1 channel(s) and 'rgb' has 3" in text and "Continue unticked" in text
    assert widget.train.worker is None and widget.train.resume.isChecked()

    answers.append(NEW)
    train(qtbot, widget)
    assert widget.session.model.in_channels == 3 and len(widget.session.model.history) == 1
    assert widget.session.model.class_names == ["background", "cell"]


def test_a_new_model_names_its_classes_after_the_annotations(demo, qtbot, asked):
    viewer, _, widget = demo
    other_dataset(viewer, widget, nuclei()[128:256, 128:256])
    train(qtbot, widget)
    assert asked[0] == []
    assert widget.session.model.class_names == ["background", "cell"]
    widget.predict.probabilities.setChecked(True)
    predict(qtbot, widget)
    assert "other: P(cell)" in viewer.layers


def test_the_outcome_says_at_what_scale_a_round_trained():
    from napari_unet.widgets._train import trained_at

    assert trained_at({"scale": 0.512}) == " · at ×0.51"
    assert trained_at({"scale": 2.0}) == " · at ×2.00"
    assert trained_at({"scale": 1.0}) == ""
    assert trained_at({"steps": 3}) == ""  # a round recorded before object sizes


def test_annotations_placed_otherwise_than_the_image_are_named_at_start(demo, qtbot, notes):
    viewer, _, widget = demo
    painted = viewer.layers["nuclei annotations"]
    shifted = viewer.add_labels(
        painted.data.copy(), name="shifted", scale=(2, 2), metadata=dict(painted.metadata)
    )
    widget.annotate.annotations_combo.choose(shifted)
    train(qtbot, widget)
    text = messages(notes)
    assert "'shifted' lies otherwise than 'nuclei' in the viewer (scale (2, 2) where" in text
    assert widget.session.model is not None, "it warns and still trains"

    notes.clear()
    widget.annotate.annotations_combo.choose(painted)
    train(qtbot, widget)
    assert "lies otherwise" not in messages(notes)
