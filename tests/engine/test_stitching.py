"""Objects cut block by block with a halo and stitched: the whole volume's, renumbered."""

import numpy as np
import pytest

from napari_unet.engine.stitching import (
    face_matches,
    find_volume_objects_blockwise,
    global_ids,
    neighbours,
    plan_blocks,
)
from napari_unet.engine.volume_objects import find_volume_objects

from helpers import random_balls


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


@pytest.fixture(scope="module")
def nuclei():
    """(probability, mask) of 80 touching balls in a 40x160x200 volume, z step 2 pixels."""
    return random_balls((40, 160, 200), 80)


@pytest.mark.parametrize(
    ("core", "halo"),
    [((16, 64, 64), (12, 24, 24)), ((7, 33, 50), (10, 20, 20)), ((40, 160, 200), (0, 0, 0))],
)
def test_blocks_with_a_halo_give_the_whole_volumes_objects(nuclei, core, halo):
    probability, mask = nuclei
    whole = find_volume_objects(probability, mask, z_spacing=2.0)
    blocks = find_volume_objects_blockwise(probability, mask, None, 2.0, core, halo)
    assert blocks.dtype == np.uint32 and whole.max() > 50
    assert same_up_to_renumbering(blocks, whole)
    assert set(np.unique(blocks)) == set(range(int(whole.max()) + 1))  # no gaps


def test_blocks_cover_the_volume_once_and_faces_are_shared():
    blocks = plan_blocks((10, 50, 70), (4, 32, 32), (2, 8, 8))
    covered = np.zeros((10, 50, 70), dtype=int)
    for block in blocks:
        covered[block.slices()] += 1
        for (c0, c1), (e0, e1) in zip(block.core, block.extended, strict=True):
            assert e0 <= c0 and c1 <= e1
    assert (covered == 1).all() and len(blocks) == 3 * 2 * 3
    faces = neighbours(blocks)
    assert len(faces) == (2 * 2 * 3) + (3 * 1 * 3) + (3 * 2 * 2)
    for a, b, band in faces:
        for (low, high), (e0, e1) in zip(band, a.extended, strict=True):
            assert e0 <= low < high <= e1
        for (low, high), (e0, e1) in zip(band, b.extended, strict=True):
            assert e0 <= low < high <= e1


def test_ids_match_only_where_they_mostly_overlap():
    a = np.zeros((4, 10), dtype=np.uint32)
    b = np.zeros_like(a)
    a[:, :5], b[:, :5] = 1, 7  # the same object
    a[:, 6:], b[:, 6:8], b[:, 8:] = 2, 8, 9  # one object in a, two in b: no match
    assert face_matches(a, b).tolist() == [[1, 7]]
    assert face_matches(a, np.zeros_like(b)).shape == (0, 2)


def test_global_ids_join_matches_and_leave_no_gaps():
    # block 0: ids 1, 2 (2 only in its halo); block 1: ids 1, 2, 3; 0:1 is 1:3
    lookups = global_ids([2, 3], [np.array([0, 1]), np.array([1, 2, 3])], [(0, 1, [(1, 3)])])
    assert lookups[0][1] == lookups[1][3]
    written = {lookups[0][1], *lookups[1][1:]}
    assert written == {1, 2, 3}
    assert lookups[0][0] == lookups[1][0] == 0
