"""The object size a model is made for: the median width of the objects of a class mask, and
the factor that brings them to the model's size (1 near it, clipped to the scale range)."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk

from napari_unet.engine.object_size import (
    FEWEST,
    MIN_AREA,
    SAME,
    factor_for,
    object_diameter,
)
from napari_unet.engine.resizing import SCALE


def discs(radii, spacing: int = 70) -> np.ndarray:
    """Instances: one disc of each radius, on a grid, ids 1, 2, ..."""
    columns = 4
    rows = -(-len(radii) // columns)
    instances = np.zeros((rows * spacing, columns * spacing), np.int32)
    for i, radius in enumerate(radii):
        centre = (spacing // 2 + spacing * (i // columns), spacing // 2 + spacing * (i % columns))
        instances[disk(centre, radius, shape=instances.shape)] = i + 1
    return instances


@pytest.mark.parametrize("radius", [5, 12, 25])
def test_the_diameter_of_discs_is_twice_their_radius(radius):
    diameter = object_diameter(discs([radius] * 6))
    assert diameter == pytest.approx(2 * radius, abs=1)  # to a pixel, drawn on a grid


def test_the_regions_holding_half_the_mask_set_the_width():
    # the median weighted by area: three large discs outweigh ten small ones
    assert object_diameter(discs([4] * 10 + [12] * 3)) == pytest.approx(24, abs=1)
    # and the width of the middle one, by area, among discs of many sizes
    assert object_diameter(discs([6, 8, 10, 10, 10, 12, 14])) == pytest.approx(20, abs=1)


def test_a_mask_and_its_instances_measure_the_same():
    instances = discs([10] * FEWEST)
    assert object_diameter(instances > 0) == object_diameter(instances) == 20


def test_touching_objects_keep_the_width_of_one():
    # pairs of overlapping discs: one region each, twice as large, but no wider
    mask = np.zeros((100, 500), bool)
    for i in range(6):
        for dx in (0, 18):
            mask[disk((50, 40 + 80 * i + dx), 10, shape=mask.shape)] = True
    assert ndimage.label(mask)[1] == 6
    assert object_diameter(mask) == pytest.approx(20, abs=1)


def test_specks_are_not_measured():
    mask = discs([10] * FEWEST) > 0
    for i in range(3 * FEWEST):  # many specks, each under MIN_AREA pixels
        mask[2 + 4 * (i // 12), 3 * (i % 12)] = True
    assert MIN_AREA > 1
    assert object_diameter(mask) == pytest.approx(20, abs=1)


def test_objects_cut_by_the_edge_count_only_when_too_few_others_remain():
    cut = np.zeros((260, 280), bool)
    for x in (35, 105, 175, 245):  # wide discs, half outside the top and the bottom edges
        cut[disk((0, x), 30, shape=cut.shape)] = True
        cut[disk((259, x), 30, shape=cut.shape)] = True
    inner = np.pad(discs([10] * 8) > 0, ((60, 60), (0, 0)))  # 2 rows of 4, away from them
    assert ndimage.label(inner | cut)[1] == 16
    assert object_diameter(inner | cut) == pytest.approx(20, abs=1)
    few = np.pad(discs([10] * (FEWEST - 1)) > 0, ((60, 130), (0, 0)))
    assert object_diameter(few) is None
    wide = object_diameter(few | cut)  # 4 inner discs and 8 cut ones: all are measured
    assert wide is not None and wide > 30


def test_too_few_objects_measure_nothing():
    assert object_diameter(discs([10] * (FEWEST - 1))) is None
    assert object_diameter(discs([10] * FEWEST)) is not None
    assert object_diameter(np.zeros((64, 64), np.int32)) is None


def test_a_stack_of_slices_is_measured_together():
    one = discs([8] * 3)
    stack = np.stack([one, np.where(one > 0, one + 3, 0)])  # 6 objects over two slices
    assert object_diameter(one) is None
    assert object_diameter(stack) == pytest.approx(16, rel=0.05)


def test_unknown_sizes_give_factor_one():
    assert factor_for(None, 24.5) == 1.0
    assert factor_for(50.0, None) == 1.0
    assert factor_for(None, None) == 1.0
    assert factor_for(0.0, 24.5) == 1.0


def test_factors_near_one_are_one():
    target = 25.0
    assert factor_for(target / SAME[1], target) == 1.0  # exactly at the ends
    assert factor_for(target / SAME[0], target) == 1.0
    assert factor_for(22.0, target) == 1.0
    assert factor_for(29.0, target) == 1.0
    assert factor_for(target / 1.3, target) == pytest.approx(1.3)
    assert factor_for(target / 0.75, target) == pytest.approx(0.75)


def test_factors_bring_objects_to_the_target_within_the_scale_range():
    assert factor_for(50.0, 25.0) == pytest.approx(0.5)
    assert factor_for(10.0, 25.0) == pytest.approx(2.5)
    assert factor_for(1000.0, 25.0) == SCALE.low == 0.25
    assert factor_for(1.0, 25.0) == SCALE.high == 4.0
    assert isinstance(factor_for(50.0, 25.0), float)
