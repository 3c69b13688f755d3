"""Where to annotate next: regions ranked by doubtful, unannotated area, on every slice."""

import time

import numpy as np
import pytest
from scipy import ndimage

from napari_unet.engine.errors import UNetError
from napari_unet.engine.regions import Region, rank_regions
from tests.engine.test_doubt import discs


def test_the_most_unsure_unannotated_region_comes_first():
    unsure = np.zeros((2, 300, 400), np.float32)
    unsure[1, 200:260, 300:380] = 1.0  # the most unsure area, on slice 1
    unsure[0, 10:40, 10:40] = 0.8
    regions = rank_regions(unsure, np.zeros(unsure.shape, bool), size=128, count=5)
    best = regions[0]
    assert (best.z, best.size) == (1, 128)
    assert best.y <= 200 and best.y + 128 >= 260 and best.x <= 300 and best.x + 128 >= 380
    assert regions[1].z == 0 and regions[1].score < best.score
    assert len(regions) == 2  # nothing unsure elsewhere: no more regions


def test_annotated_areas_are_skipped():
    unsure = np.ones((256, 256), np.float32)
    annotated = np.zeros(unsure.shape, bool)
    annotated[:, :128] = True
    regions = rank_regions(unsure, annotated, size=128, count=10)
    assert regions[0].x >= 128 and regions[0].score == pytest.approx(1.0)
    assert all(r.x + 128 > 128 for r in regions)
    assert rank_regions(unsure, np.ones(unsure.shape, bool), size=128) == []


def test_regions_do_not_overlap_and_stay_inside_the_image():
    rng = np.random.default_rng(0)
    unsure = rng.random((3, 200, 150), dtype=np.float32)
    regions = rank_regions(unsure, np.zeros(unsure.shape, bool), size=64, count=12)
    assert len(regions) == 12
    for i, a in enumerate(regions):
        assert 0 <= a.y <= 200 - 64 and 0 <= a.x <= 150 - 64
        assert not any(a.overlaps(b) for b in regions[i + 1 :])
    assert [r.score for r in regions] == sorted((r.score for r in regions), reverse=True)
    small = rank_regions(unsure[0, :50, :40], np.zeros((50, 40), bool), size=64, count=3)
    assert small == [Region(0, 0, 0, 64, pytest.approx(float(unsure[0, :50, :40].mean())))]


def test_a_30_slice_stack_is_ranked_in_under_a_second():
    unsure = np.random.default_rng(1).random((30, 512, 512), dtype=np.float32)
    start = time.perf_counter()
    rank_regions(unsure, np.zeros(unsure.shape, bool), size=256, count=10)
    assert time.perf_counter() - start < 1.0


def test_with_objects_a_merge_outranks_a_crowd_of_sure_objects_with_unsure_edges():
    left = [(y, x) for y in range(16, 120, 24) for x in range(16, 120, 24)]
    objects = discs((128, 384), left)  # 25 nuclei, found right
    peanut = discs((128, 384), [(64, 250), (64, 266)]) > 0  # two nuclei found as one
    objects[peanut] = objects.max() + 1
    unsure = np.zeros(objects.shape, np.float32)
    edges = (objects > 0) & ~ndimage.binary_erosion(objects > 0, iterations=2)
    unsure[edges] = 0.9  # unsure outlines everywhere
    unsure[objects > 0] = np.maximum(unsure[objects > 0], 0.05)
    open_ = np.zeros(objects.shape, bool)
    by_pixels = rank_regions(unsure, open_, size=128, count=1)[0]
    by_objects = rank_regions(unsure, open_, size=128, count=1, instances=objects)[0]
    assert by_pixels.x < 100  # the crowd of unsure edges wins by pixels
    assert by_objects.x <= 250 - 9 and by_objects.x + 128 >= 266 + 9  # the merge, by objects


def test_a_30_slice_stack_with_its_objects_is_ranked_in_under_a_second():
    centres = [(y, x) for y in range(12, 500, 26) for x in range(12, 500, 26)]
    objects = np.stack([discs((512, 512), centres)] * 30)
    unsure = np.random.default_rng(1).random(objects.shape, dtype=np.float32)
    start = time.perf_counter()
    rank_regions(unsure, np.zeros(unsure.shape, bool), size=256, count=10, instances=objects)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    ("shape", "annotated", "options", "match"),
    [
        ((64, 64), (64, 63), {}, "must be one"),
        ((64,), (64,), {}, "must be one"),
        ((64, 64), (64, 64), {"count": 0}, "number of regions"),
        ((64, 64), (64, 64), {"size": 8}, "region size"),
        ((64, 64), (64, 64), {"instances": np.zeros((64, 32))}, "of one prediction"),
    ],
)
def test_bad_input_is_one_line(shape, annotated, options, match):
    with pytest.raises(UNetError, match=match):
        rank_regions(np.zeros(shape), np.zeros(annotated, bool), **options)
