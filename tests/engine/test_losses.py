import numpy as np
import torch

from napari_unet.engine.losses import (
    IGNORE,
    border_weights,
    class_balance,
    weight_map,
    weighted_cross_entropy,
)


def two_objects(gap: int) -> np.ndarray:
    labels = np.ones((64, 96), np.uint8)
    labels[20:40, 10:40] = 2
    labels[20:40, 40 + gap : 70 + gap] = 2
    return labels


def test_border_term_is_high_in_a_narrow_gap_and_vanishes_far_away():
    weights = border_weights(two_objects(gap=2), w0=10, sigma=5)
    assert weights[30, 40] > 8  # in the 2-pixel gap: d1 + d2 ~ 2
    assert weights[5, 5] < 1e-3  # far from both objects
    assert weights[30, 25] < weights[30, 40]  # inside the first object, away from the gap


def test_border_term_matches_the_formula_with_exact_distances():
    labels = two_objects(gap=6)
    weights = border_weights(labels, w0=10, sigma=5)
    # gap pixel x=42: 3 px right of the first object (last column 39) and 4 px left of the second
    expected = 10 * np.exp(-((3 + 4) ** 2) / (2 * 5**2))
    assert np.isclose(weights[30, 42], expected, rtol=1e-4)


def test_a_single_object_gets_no_border_term():
    labels = np.ones((40, 40), np.uint8)
    labels[10:20, 10:20] = 2
    assert border_weights(labels).max() == 0


def test_class_balance_favours_the_rare_class_and_averages_one():
    weights = class_balance({1: 900, 2: 100}, 2)
    assert weights[1] > weights[0]
    assert np.isclose(weights.mean(), 1.0)
    assert class_balance({1: 10, 3: 10}, 3)[1] == 0  # a class not annotated gets no weight


def test_weight_map_is_zero_where_not_annotated():
    labels = two_objects(gap=2)
    labels[:, :5] = 0
    weights = weight_map(labels.astype(np.int64), class_balance({1: 1, 2: 1}, 2), w0=10)
    assert (weights[:, :5] == 0).all()
    assert (weights[:, 5:] > 0).all()
    plain = weight_map(labels.astype(np.int64), class_balance({1: 1, 2: 1}, 2), w0=0)
    assert np.allclose(plain[:, 5:], 1.0)


def test_loss_ignores_unannotated_pixels_and_scales_with_weights():
    logits = torch.randn(1, 2, 8, 8)
    targets = torch.full((1, 8, 8), IGNORE)
    targets[0, :4] = 1
    weights = torch.ones(1, 8, 8)
    loss = weighted_cross_entropy(logits, targets, weights)
    changed = logits.clone()
    changed[0, :, 4:] = torch.randn(2, 4, 8) * 100
    assert torch.isclose(loss, weighted_cross_entropy(changed, targets, weights))
    assert torch.isclose(2 * loss, weighted_cross_entropy(logits, targets, 2 * weights))
