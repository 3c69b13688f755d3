"""How well objects match the true ones: what users count and measure, scored as the DSB 2018
challenge and StarDist report it (the benchmarks and the built-in models' scripts use it)."""

import numpy as np

THRESHOLDS = tuple(np.round(np.arange(0.5, 0.91, 0.05), 2))
"""The IoU thresholds of the DSB 2018 metric."""


def matched_objects(
    found: np.ndarray, true: np.ndarray, thresholds=THRESHOLDS
) -> tuple[np.ndarray, int, int]:
    """(matches per IoU threshold, objects found, true objects) of two label images, whose
    smallest id (0) is background. Above IoU 0.5 a found object overlaps at most one true
    object that much, so counting pairs counts one-to-one matches."""
    found = np.unique(found.ravel(), return_inverse=True)[1]
    true = np.unique(true.ravel(), return_inverse=True)[1]
    both = (found > 0) & (true > 0)
    stride = int(true.max()) + 1
    pairs, shared = np.unique(
        found[both].astype(np.int64) * stride + true[both], return_counts=True
    )
    union = (
        np.bincount(found)[pairs // stride] + np.bincount(true, minlength=stride)[pairs % stride]
    ) - shared
    iou = shared / union
    matched = np.array([(iou > t).sum() for t in thresholds])
    return matched, int(found.max()), int(true.max())


def object_f1(found: np.ndarray, true: np.ndarray, threshold: float = 0.5) -> float:
    """F1 of the found objects matched to the true ones at IoU above ``threshold``."""
    (matched,), n_found, n_true = matched_objects(found, true, (threshold,))
    return 2 * matched / max(n_found + n_true, 1)


def matches_one(mask: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> bool:
    """Whether the object ``mask`` overlaps one object of the label image ``truth`` (0 =
    background) at IoU ``threshold`` or more."""
    ids, counts = np.unique(truth[mask], return_counts=True)
    counts = np.where(ids > 0, counts, 0)
    if not counts.any():
        return False
    best, overlap = ids[counts.argmax()], counts.max()
    return overlap / (mask.sum() + (truth == best).sum() - overlap) >= threshold
