"""Objects from a class probability: touching objects split, single objects left whole."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.measure import label

from napari_unet.engine.errors import UNetError
from napari_unet.engine.objects import ObjectSettings, find_objects
from napari_unet.samples import nuclei_instances


def discs(*circles, shape=(96, 128)) -> np.ndarray:
    """A mask of the union of ``(y, x, radius)`` discs."""
    yy, xx = np.indices(shape)
    mask = np.zeros(shape, dtype=bool)
    for y, x, r in circles:
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= r**2
    return mask


def objects(mask, **settings) -> np.ndarray:
    """find_objects on a probability that is the mask, slightly blurred."""
    probability = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    return find_objects(probability, mask, ObjectSettings(**settings))


def count(ids: np.ndarray) -> int:
    return len(np.unique(ids[ids > 0]))


TWO = [(48, 40, 14), (48, 60, 9)]


THREE = [(40, 30, 12), (40, 52, 14), (60, 42, 10)]


@pytest.mark.parametrize(("circles", "n"), [(TWO, 2), (THREE, 3)])
def test_touching_discs_of_different_sizes_are_split(circles, n):
    mask = discs(*circles)
    assert count(label(mask)) == 1
    found = objects(mask)
    assert found.dtype == np.uint32
    assert count(found) == n
    assert set(np.unique(found)) == set(range(n + 1))
    assert ((found > 0) == mask).all()
    for y, x, _ in circles:
        centre = found[y, x]
        assert centre > 0 and (found == centre)[y - 3 : y + 4, x - 3 : x + 4].all()


@pytest.mark.parametrize("scale", [0.5, 1, 3])
def test_splitting_does_not_depend_on_the_objects_size(scale):
    circles = [(y * scale, x * scale, r * scale) for y, x, r in TWO]
    mask = discs(*circles, shape=(int(96 * scale), int(128 * scale)))
    assert count(objects(mask)) == 2


def test_single_elongated_or_irregular_objects_are_not_cut():
    yy, xx = np.indices((96, 128))
    ellipse = ((yy - 48) / 10.0) ** 2 + ((xx - 64) / 45.0) ** 2 <= 1
    assert count(objects(ellipse)) == 1
    bean = discs((48, 50, 16), (48, 66, 15))  # two heavily overlapping discs: one blob
    assert count(objects(bean)) == 1


def test_split_zero_gives_connected_components():
    mask = discs(*TWO) | discs((15, 110, 6))
    found = objects(mask, split=0)
    assert count(found) == 2
    assert (found == label(mask)).all()


def test_more_eager_splitting_never_gives_fewer_objects():
    mask = discs(*THREE) | discs(*[(y + 40, x + 60, r) for y, x, r in TWO], shape=(96, 128))
    counts = [count(objects(mask, split=s)) for s in (0, 0.3, 0.6, 0.9, 1)]
    assert counts == sorted(counts)
    assert counts[0] == 2 and counts[-1] >= 5


def test_probability_dips_split_objects_the_mask_does_not():
    mask = np.zeros((64, 96), dtype=bool)
    mask[16:48, 8:88] = True
    probability = np.ones(mask.shape, dtype=np.float32)
    probability[:, 46:50] = 0.3
    assert count(find_objects(probability, mask, ObjectSettings(split=0.5))) == 2
    assert count(find_objects(np.ones_like(probability), mask, ObjectSettings(0.5))) == 1


def test_small_objects_are_dropped_alone_and_merged_when_touching():
    mask = discs(*TWO) | discs((15, 110, 3))
    assert count(objects(mask)) == 3
    found = objects(mask, min_size=40)
    assert count(found) == 2
    assert found[15, 110] == 0
    assert count(objects(mask, min_size=300)) == 1  # the small disc of TWO (254 px) joins
    assert count(objects(mask, split=0, min_size=40)) == 1
    assert (objects(mask, min_size=300) > 0).sum() == discs(*TWO).sum()


def test_empty_and_full_masks():
    empty = np.zeros((32, 32), dtype=bool)
    assert not find_objects(empty.astype(np.float32), empty).any()
    full = ~empty
    assert count(find_objects(full.astype(np.float32), full)) == 1


def test_a_512_slice_is_fast():
    import time

    centres = np.ones((512, 512), dtype=bool)
    centres[tuple(np.random.default_rng(0).integers(0, 512, (2, 300)))] = False
    mask = ndimage.distance_transform_edt(centres) < 10
    probability = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    find_objects(probability, mask)
    start = time.perf_counter()
    find_objects(probability, mask)
    assert time.perf_counter() - start < 1.0  # ~0.07 s quiet; generous for a shared machine


@pytest.mark.parametrize(
    "settings",
    [
        {"split": float("nan")},
        {"split": -0.1},
        {"split": 1.5},
        {"split": "0.5"},
        {"min_size": -1},
        {"min_size": 2.5},
        {"min_size": float("nan")},
        {"min_size": True},
    ],
)
def test_bad_settings(settings):
    with pytest.raises(UNetError, match="split|minimum object size"):
        ObjectSettings(**settings)
    good = ObjectSettings()
    for name, value in settings.items():
        setattr(good, name, value)
    with pytest.raises(UNetError):
        find_objects(np.zeros((8, 8), np.float32), np.zeros((8, 8), bool), good)


def test_touching_nuclei_of_the_sample_are_separated():
    instances = nuclei_instances()
    mask = instances > 0
    probability = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)
    n_true, n_components = count(instances), count(label(mask))
    n_found = count(find_objects(probability, mask))
    assert n_components < n_true - 15
    assert abs(n_found - n_true) <= 6


def test_mismatched_or_stacked_inputs_are_refused():
    mask = discs(*TWO)
    with pytest.raises(UNetError, match="one \\(Y, X\\) slice"):
        find_objects(mask[:, :-1].astype(np.float32), mask)
    with pytest.raises(UNetError, match="one \\(Y, X\\) slice"):
        find_objects(np.stack([mask, mask]).astype(np.float32), np.stack([mask, mask]))


def test_nan_probability_still_gives_the_objects_of_the_mask():
    mask = discs(*TWO) | discs((15, 110, 6))
    probability = np.full(mask.shape, np.nan, dtype=np.float32)
    assert ((find_objects(probability, mask) > 0) == mask).all()


def test_a_huge_integer_setting_is_refused_not_crashed():
    from napari_unet.engine.objects import ObjectSettings

    with pytest.raises(UNetError, match="split"):
        ObjectSettings(split=10**400)
