"""Objects of a volume: one id through z, anisotropic spacing, bounded memory."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label

from napari_unet.engine import volume_objects
from napari_unet.engine.errors import UNetError
from napari_unet.engine.objects import ObjectSettings, find_objects
from napari_unet.engine.volume_objects import anisotropic_distance, find_volume_objects

from helpers import random_balls


def balls(*centres, shape=(24, 64, 96), z_spacing=1.0) -> np.ndarray:
    """A mask of the union of ``(z, y, x, radius)`` balls (z in slices, radius in pixels) on a
    grid whose z step is ``z_spacing`` pixels."""
    zz, yy, xx = np.indices(shape)
    mask = np.zeros(shape, dtype=bool)
    for z, y, x, r in centres:
        mask |= ((zz - z) * z_spacing) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    return mask


def objects(mask, z_spacing=1.0, **settings) -> np.ndarray:
    """find_volume_objects on a probability that is the mask, slightly blurred."""
    probability = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    return find_volume_objects(probability, mask, ObjectSettings(**settings), z_spacing)


def count(ids: np.ndarray) -> int:
    return len(np.unique(ids[ids > 0]))


TWO = [(12, 32, 30, 14), (12, 32, 52, 10)]


def test_touching_balls_are_split_and_each_keeps_one_id_through_z():
    mask = balls(*TWO, z_spacing=2.0)
    assert count(label(mask)) == 1
    found = objects(mask, z_spacing=2.0)
    assert found.dtype == np.uint32 and found.shape == mask.shape
    assert count(found) == 2 and ((found > 0) == mask).all()
    for z, y, x, _ in TWO:
        core = found[z - 2 : z + 3, y - 4 : y + 5, x - 4 : x + 5]
        assert (core == found[z, y, x]).all() and found[z, y, x] > 0
        column = found[:, y, x][mask[:, y, x]]
        assert (column == found[z, y, x]).all()  # one id in every slice the ball crosses


def test_balls_touching_along_z_are_split():
    mask = balls((12, 32, 40, 12), (32, 32, 40, 9), shape=(44, 64, 80))
    assert count(label(mask)) == 1
    found = objects(mask)
    assert count(found) == 2
    assert found[12, 32, 40] != found[32, 32, 40]


@pytest.mark.parametrize("z_spacing", [1.0, 2.0, 4.0])
def test_a_round_nucleus_stays_whole_at_its_own_z_spacing(z_spacing):
    shape = (int(48 / z_spacing), 64, 64)
    mask = balls((shape[0] / 2, 32, 32, 16), shape=shape, z_spacing=z_spacing)
    assert count(objects(mask, z_spacing)) == 1


@pytest.mark.parametrize("z_spacing", [0.5, 1.0, 2.5])
def test_the_anisotropic_distance_is_exact(z_spacing):
    rng = np.random.default_rng(1)
    inside = ndimage.gaussian_filter(rng.random((18, 40, 44)), 2) > 0.48
    expected = ndimage.distance_transform_edt(inside, sampling=(z_spacing, 1, 1))
    np.testing.assert_allclose(anisotropic_distance(inside, z_spacing), expected, atol=1e-4)


def test_split_zero_gives_3d_connected_components():
    mask = balls(*TWO) | balls((4, 8, 86, 4))
    found = objects(mask, split=0)
    assert count(found) == 2
    assert (found == label(mask)).all()


def test_min_size_counts_voxels():
    small = balls((4, 8, 86, 3))
    voxels = int(small.sum())
    mask = balls(*TWO) | small
    assert count(objects(mask, min_size=voxels)) == 3
    found = objects(mask, min_size=voxels + 1)
    assert count(found) == 2 and found[4, 8, 86] == 0


def test_empty_and_nan_inputs():
    empty = np.zeros((4, 16, 16), dtype=bool)
    assert not find_volume_objects(empty.astype(np.float32), empty).any()
    mask = balls(*TWO)
    probability = np.full(mask.shape, np.nan, dtype=np.float32)
    assert ((find_volume_objects(probability, mask) > 0) == mask).all()
    full = np.ones((3, 8, 8), dtype=bool)
    assert count(find_volume_objects(full.astype(np.float32), full)) == 1


@pytest.mark.parametrize("z_spacing", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_bad_z_spacing_is_one_line(z_spacing):
    mask = balls(*TWO)
    with pytest.raises(UNetError, match=r"^the z spacing \(z step / pixel size\) must be"):
        find_volume_objects(mask.astype(np.float32), mask, z_spacing=z_spacing)


def test_a_slice_is_not_a_volume():
    mask = np.ones((16, 16), dtype=bool)
    with pytest.raises(UNetError, match=r"one \(Z, Y, X\) stack"):
        find_volume_objects(mask.astype(np.float32), mask)


def test_slices_of_a_series_keep_their_2d_objects():
    """The 2D rule is unchanged: each slice of the volume's mask, cut alone, still splits."""
    mask = balls(*TWO)
    probability = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    assert count(find_objects(probability[12], mask[12])) == 2


def test_memory_stays_well_under_three_times_the_probabilities():
    probability, mask = random_balls((40, 256, 256), 150)
    tracemalloc.start()
    try:
        found = find_volume_objects(probability, mask, z_spacing=2.0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count(found) > 100
    assert peak < 1.5 * probability.nbytes


def test_a_piece_too_big_to_cut_at_once_is_cut_in_blocks_alike(monkeypatch):
    probability, mask = random_balls((40, 200, 240), 400)  # most of them one piece
    assert label(mask).max() < 100  # 400 balls
    whole = find_volume_objects(probability, mask, z_spacing=2.0)
    monkeypatch.setattr(volume_objects, "LARGEST_PIECE", 2**12)
    monkeypatch.setattr(volume_objects, "BLOCK_CORE", (8, 64, 64))
    monkeypatch.setattr(volume_objects, "BLOCK_HALO", 28)
    blocks = find_volume_objects(probability, mask, z_spacing=2.0)
    assert ((blocks > 0) == mask).all() and whole.max() > 300
    assert set(np.unique(blocks)) == set(range(int(blocks.max()) + 1))
    pairs = np.unique(np.stack([whole.ravel(), blocks.ravel()]), axis=1)
    assert pairs.shape[1] - 1 <= whole.max() + 3  # the same objects but for a few voxels
    assert abs(int(blocks.max()) - int(whole.max())) <= 3
