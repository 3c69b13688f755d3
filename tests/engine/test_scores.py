"""Objects matched to the true ones, as the benchmarks and the built-in models' scripts score."""

import numpy as np

from napari_unet.engine.scores import THRESHOLDS, matched_objects, matches_one, object_f1


def two_squares() -> np.ndarray:
    true = np.zeros((20, 40), np.int32)
    true[2:12, 2:12] = 5
    true[2:12, 20:30] = 9
    return true


def test_identical_objects_match_at_every_threshold_whatever_their_ids():
    true = two_squares()
    found = np.where(true == 5, 1, np.where(true == 9, 2, 0))
    matched, n_found, n_true = matched_objects(found, true)
    assert (n_found, n_true) == (2, 2)
    assert matched.tolist() == [2] * len(THRESHOLDS)
    assert object_f1(found, true) == 1.0


def test_a_missed_object_and_a_shrunken_one():
    true = two_squares()
    found = np.zeros_like(true)
    found[2:12, 2:9] = 3  # IoU 0.7 with the first square; the second is missed
    matched, n_found, n_true = matched_objects(found, true, (0.5, 0.75))
    assert matched.tolist() == [1, 0] and (n_found, n_true) == (1, 2)
    assert object_f1(found, true) == 2 * 1 / 3
    assert object_f1(found, true, threshold=0.75) == 0.0


def test_nothing_found_scores_zero():
    assert object_f1(np.zeros((20, 40), np.int32), two_squares()) == 0.0


def test_an_object_matches_one_true_object_only_above_the_threshold():
    truth = two_squares()
    first = truth == truth[truth > 0].min()
    assert matches_one(first, truth)
    shrunk = first.copy()
    shrunk[np.nonzero(first)[0].min() :][: first.any(1).sum() * 2 // 3] = False
    assert not matches_one(shrunk, truth) and matches_one(shrunk, truth, threshold=0.3)
    assert not matches_one(truth == 0, np.zeros_like(truth))
