"""The training section: rounds stopped, ended by a deleted layer or out of memory, and their
progress and plot."""

import pytest

pytest.importorskip("napari")

import torch

from napari_unet.engine.train import Trainer, TrainSettings

from .dock_helpers import ENDLESS, TINY, WAIT_MS, messages, train


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
