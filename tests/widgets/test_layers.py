"""The dock's layers: objects painted each with its own id train as a class with gaps."""

import pytest

pytest.importorskip("napari")

import numpy as np
from skimage.measure import label as connected_components

from .dock_helpers import WAIT_MS, objects_layer


def test_touching_objects_train_as_a_class_with_a_gap(objects_dock, qtbot):
    viewer, widget = objects_dock
    layer = objects_layer(widget)
    data = np.zeros(layer.data.shape, np.uint16)
    data[100:140, 100:160] = 1
    data[110:130, 110:130] = 2
    data[110:130, 130:150] = 3
    layer.data = data
    widget.train.start()
    trainer = widget.train.job.trainer
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)
    assert widget.session.model is not None and widget.session.model.n_classes == 2
    classes = trainer.annotations[0]
    assert set(np.unique(classes)) == {0, 1, 2}
    assert classes[120, 129] == 1 and classes[120, 130] == 1, "background between the two"
    assert connected_components(classes == 2).max() == 2
    assert np.array_equal(layer.data, data), "the painted objects are left as they are"
