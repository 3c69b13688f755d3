"""The combo boxes of layers: the accepted layers of one type, in sync with the viewer."""

import pytest

pytest.importorskip("napari")

import numpy as np
from napari.layers import Image

from napari_unet.widgets._combo import LayerCombo


def test_the_combo_lists_accepted_layers_of_its_type_and_keeps_the_choice(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    small = viewer.add_image(np.zeros((8, 8)), name="small")
    labels = viewer.add_labels(np.zeros((8, 8), np.uint8), name="labels")
    combo = LayerCombo(viewer, Image, accept=lambda layer: layer.data.shape[0] > 4)
    qtbot.addWidget(combo)
    assert combo.layers() == [small] and combo.layer() is small

    large = viewer.add_image(np.zeros((16, 16)), name="large")
    viewer.add_image(np.zeros((2, 2)), name="refused")
    assert combo.layers() == [small, large] and combo.layer() is small
    assert combo.choose(large) and combo.layer() is large
    assert not combo.choose(labels) and combo.layer() is large

    large.name = "renamed"
    assert combo.itemText(1) == "renamed" and combo.layer() is large
    chosen = []
    combo.currentIndexChanged.connect(chosen.append)
    viewer.layers.remove(large)
    assert combo.layers() == [small] and combo.layer() is small and chosen
    viewer.layers.remove(small)
    assert combo.layers() == [] and combo.layer() is None


def test_a_layer_that_is_not_preferred_is_listed_but_never_chosen_for_the_user(
    make_napari_viewer, qtbot
):
    viewer = make_napari_viewer()
    combo = LayerCombo(viewer, Image, prefer=lambda layer: layer.name != "result")
    qtbot.addWidget(combo)
    result = viewer.add_image(np.zeros((8, 8)), name="result")
    assert combo.layers() == [result] and combo.layer() is None
    mine = viewer.add_image(np.zeros((8, 8)), name="mine")
    assert combo.layer() is mine
    assert combo.choose(result) and combo.layer() is result  # the user may still choose it
    viewer.layers.remove(result)
    assert combo.layer() is mine


def test_the_list_follows_new_data_of_any_layer(make_napari_viewer, qtbot):
    from napari.layers import Labels

    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((8, 8)), name="image")
    labels = viewer.add_labels(np.zeros((8, 8), np.uint8), name="labels")
    combo = LayerCombo(viewer, Labels, accept=lambda layer: layer.data.shape == image.data.shape)
    qtbot.addWidget(combo)
    assert combo.layer() is labels

    image.data = np.zeros((16, 16))
    assert combo.layers() == [] and combo.layer() is None, "the image's new shape is seen"
    labels.data = np.zeros((16, 16), np.uint8)
    assert combo.layer() is labels, "and the labels' new shape"
