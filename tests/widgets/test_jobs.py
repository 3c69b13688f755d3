"""The dock's background jobs: napari stays responsive while a model trains, failures become
notifications, and updates are throttled."""

import pytest

pytest.importorskip("napari")

import time

import torch
from qtpy.QtCore import QTimer

from napari_unet.engine.errors import UNetError
from napari_unet.engine.train import TrainSettings
from napari_unet.widgets._jobs import Throttle, notify_error

from .dock_helpers import messages, train


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


def test_failed_jobs_are_notifications_that_say_what_failed(notes):
    notify_error("Training failed", UNetError("annotate background (1) and a class"))
    notify_error("Prediction failed", torch.OutOfMemoryError("CUDA out of memory"))
    assert "Training failed: annotate background (1) and a class" in messages(notes)
    assert "Prediction failed: the device ran out of memory" in messages(notes)


def test_a_throttle_calls_its_slot_once_for_many_pokes(qtbot):
    calls = []
    throttle = Throttle(lambda: calls.append(time.perf_counter()), ms=50)
    for _ in range(20):
        throttle.poke()
    qtbot.waitUntil(lambda: len(calls) == 1, timeout=5000)
    qtbot.wait(150)
    assert len(calls) == 1
    throttle.poke()
    qtbot.waitUntil(lambda: len(calls) == 2, timeout=5000)
