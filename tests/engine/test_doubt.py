"""How doubtful each found object is: unsure inside, less convex than the others (a merge),
or of an odd size; and the doubt map Next region ranks by."""

import time

import numpy as np
import pytest
from skimage.draw import disk

from napari_unet.engine.doubt import RING, doubt_map, hull_areas, object_doubts


def discs(shape, centres, radius=9) -> np.ndarray:
    """A label image with one disc per centre, ids 1, 2, ... in order."""
    out = np.zeros(shape, np.int32)
    for i, centre in enumerate(centres, start=1):
        out[disk(centre, radius, shape=shape)] = i
    return out


def test_the_hull_of_a_disc_is_about_its_area_and_an_l_is_filled_out():
    objects = discs((64, 64), [(20, 20)], radius=12)
    objects[40:60, 40:44] = 2
    objects[56:60, 44:60] = 2
    hull = hull_areas(objects, 3)
    area = np.bincount(objects.ravel())
    assert hull[1] == pytest.approx(area[1], rel=0.05)
    assert hull[2] > 1.5 * area[2]  # the L's hull holds the empty corner too
    assert hull[0] == 0  # background is not an object


def test_a_merge_a_giant_a_fragment_and_an_unsure_object_are_the_doubtful_ones():
    objects = discs((200, 200), [(30, 30), (30, 80), (30, 130), (80, 30), (80, 80)])
    peanut = discs((200, 200), [(140, 30), (140, 46)]) > 0  # two touching nuclei as one
    objects[peanut] = 6
    objects[disk((140, 120), 30, shape=objects.shape)] = 7  # ten times the usual size
    objects[disk((180, 180), 3, shape=objects.shape)] = 8  # a fragment
    unsure = np.full(objects.shape, 0.1, np.float32)
    unsure[objects == 5] = 0.9  # the model hesitates on this one
    area = np.bincount(objects.ravel())[1:]
    doubt = object_doubts(objects, unsure, float(np.median(area)))
    typical = doubt[1:5]
    assert doubt[0] == 0 and typical.max() < 0.15
    for odd in (5, 6, 7, 8):
        assert doubt[odd] > typical.max() + 0.1, odd
    assert ((doubt >= 0) & (doubt <= 1)).all()


def test_the_map_holds_doubt_beyond_the_median_object_and_uncertainty_away_from_objects():
    objects = discs((96, 96), [(20, 20), (20, 60), (70, 20)])
    objects[disk((70, 65), 20, shape=objects.shape)] = 4  # an odd one: four times the size
    objects = np.stack([objects, np.zeros((96, 96), np.int32)])
    unsure = np.random.default_rng(0).random(objects.shape, dtype=np.float32)
    out = doubt_map(objects, unsure)
    assert out.shape == unsure.shape and out.dtype == np.float32
    area = np.bincount(objects[0].ravel())[1:]
    doubt = object_doubts(objects[0], unsure[0], float(np.median(area)))
    typical = np.median(doubt[1:])
    for i in range(1, 5):
        assert np.allclose(out[0][objects[0] == i], max(doubt[i] - typical, 0))
    assert out[0][objects[0] == 4].min() > 0.1  # the odd one stands out
    assert out[0, 20, 20 + 8 + RING] == 0  # the ring of unsure edges around an object
    assert out[0, 45, 40] == unsure[0, 45, 40]  # far from objects: the pixel uncertainty
    np.testing.assert_array_equal(out[1], unsure[1])  # a slice without objects
    np.testing.assert_array_equal(doubt_map(objects[0], unsure[0]), out[0])  # 2D alike
    assert np.array_equal(doubt_map(np.zeros((8, 8), int), unsure[0, :8, :8]), unsure[0, :8, :8])


def test_a_30_slice_stack_gets_its_doubt_map_fast():
    rng = np.random.default_rng(2)
    centres = [(y, x) for y in range(12, 500, 26) for x in range(12, 500, 26)]
    objects = np.stack([discs((512, 512), centres, radius=int(rng.integers(6, 12)))] * 30)
    unsure = rng.random(objects.shape, dtype=np.float32)
    start = time.perf_counter()
    doubt_map(objects, unsure)
    assert time.perf_counter() - start < 1.5
