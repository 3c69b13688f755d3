"""Running the engine's progress generators to their end."""

import numpy as np
import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.engine.model import UNetConfig
from napari_unet.engine.predict import Predictor, PredictProgress
from napari_unet.engine.progress import drain
from napari_unet.engine.segmenter import Segmenter


def counting(n: int):
    yield from range(n)
    return f"{n} done"


def test_drain_passes_each_event_and_returns_the_generators_value():
    events = []
    assert drain(counting(3), events.append) == "3 done"
    assert events == [0, 1, 2]
    assert drain(counting(0), events.append) == "0 done" and events == [0, 1, 2]


def test_without_a_callback_the_events_are_dropped():
    run = counting(4)
    assert drain(run) == "4 done"
    with pytest.raises(StopIteration):
        next(run)


def test_an_error_of_the_generator_or_the_callback_ends_the_run():
    def failing():
        yield 1
        raise UNetError("slice 2 is broken")

    with pytest.raises(UNetError, match="slice 2 is broken"):
        drain(failing())

    events, run = [], counting(5)

    def interrupt_at_two(event):
        events.append(event)
        if event == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drain(run, interrupt_at_two)
    assert events == [0, 1, 2] and next(run) == 3  # the generator waits where it was


def test_a_prediction_runs_to_its_result_with_an_event_per_slice():
    segmenter = Segmenter.new(UNetConfig(depth=1, width=2))
    stack = np.random.default_rng(0).random((3, 32, 40)).astype(np.float32)
    events = []
    result = drain(Predictor(segmenter, stack, device="cpu").run(), events.append)
    assert result.complete and result.labels.shape == (3, 32, 40)
    assert all(isinstance(e, PredictProgress) for e in events)
    assert len(events) == 3
