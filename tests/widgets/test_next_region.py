"""Next region in a real viewer: the view moves to the region's slice and zooms on it, an
outline marks it, the annotations are selected with the brush, and annotated or already shown
regions are skipped."""

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("napari")

from napari_unet.engine.regions import Region  # noqa: E402
from napari_unet.widgets._next_region import (  # noqa: E402
    OUTLINE,
    NextRegion,
    annotated_mask,
    ranking,
)


@pytest.fixture
def stack_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.random.default_rng(0).random((4, 300, 400)), name="cells")
    annotations = viewer.add_labels(np.zeros((4, 300, 400), np.uint8), name="annotations")
    viewer.layers.selection.active = image
    return viewer, image, annotations


def test_the_view_moves_to_the_best_region_and_the_brush_is_ready(stack_viewer):
    viewer, image, annotations = stack_viewer
    unsure = np.zeros((4, 300, 400), np.float32)
    unsure[2, 150:200, 250:330] = 1
    regions = ranking(unsure, annotated_mask(annotations, unsure.shape), 64, None)
    guide = NextRegion(viewer)
    guide.reset(image, regions)
    region = guide.next(annotated_mask(annotations, unsure.shape))
    assert region.z == 2 and region.y <= 150 + 32 and region.x <= 250 + 64
    outline = guide.show(region, annotations)
    assert outline.name == OUTLINE and outline in viewer.layers
    assert viewer.dims.current_step[0] == 2
    centre = np.array(viewer.camera.center[-2:])
    expected = np.array([region.y + 32, region.x + 32]) - 0.5
    np.testing.assert_allclose(centre, expected, atol=2)
    assert viewer.camera.zoom > 2  # zoomed on 64 pixels, not the whole 300x400 slice
    assert viewer.layers.selection.active is annotations and annotations.mode == "paint"


def test_with_objects_predicted_the_ranking_goes_to_the_doubtful_object(stack_viewer):
    _, _, annotations = stack_viewer
    objects = np.zeros((4, 300, 400), np.int32)
    for i, x in enumerate(range(20, 380, 30), start=1):
        objects[1, 100:120, x : x + 20] = i  # twelve alike squares, sure inside
    objects[3, 200:260, 40:100] = 13  # one nine times their size
    unsure = np.where(objects > 0, 0.1, 0).astype(np.float32)
    near = ndimage.maximum_filter(objects[1], size=5) != ndimage.minimum_filter(objects[1], size=5)
    unsure[1][near] = 0.9  # unsure outlines on slice 1
    annotated = annotated_mask(annotations, unsure.shape)
    assert ranking(unsure, annotated, 64, None)[0].z == 1
    best = ranking(unsure, annotated, 64, objects)[0]
    assert best.z == 3 and 40 - 64 < best.x < 100 and 200 - 64 < best.y < 260


def test_shown_and_annotated_regions_are_skipped_and_one_outline_is_kept(stack_viewer):
    viewer, image, annotations = stack_viewer
    regions = [Region(0, 0, 0, 64, 0.9), Region(1, 64, 64, 64, 0.8), Region(3, 0, 0, 64, 0.7)]
    guide = NextRegion(viewer)
    guide.reset(image, regions)
    annotated = np.zeros((4, 300, 400), bool)
    first = guide.next(annotated)
    guide.show(first, annotations)
    annotated[1, 64:128, 64:128] = True  # the user annotated the second region meanwhile
    second = guide.next(annotated)
    assert (first.z, second.z) == (0, 3)
    guide.show(second, annotations)
    assert guide.next(annotated) is None
    outlines = [layer for layer in viewer.layers if layer.name == OUTLINE]
    assert len(outlines) == 1 and len(outlines[0].data) == 1
    assert outlines[0].data[0][0][0] == 3


def test_a_2d_image_and_a_missing_annotation_layer(make_napari_viewer):
    viewer = make_napari_viewer()
    image = viewer.add_image(np.zeros((128, 160)), name="flat")
    assert not annotated_mask(None, (1, 128, 160)).any()
    guide = NextRegion(viewer)
    guide.reset(image, [Region(0, 64, 96, 64, 0.5)])
    outline = guide.show(guide.next(np.zeros((1, 128, 160), bool)), None)
    assert outline.ndim == 2
    np.testing.assert_allclose(outline.data[0].max(0), [127.5, 159.5])
