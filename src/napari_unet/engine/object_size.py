"""Rescaling an image so that its objects have the size a model knows best (as Cellpose does
with its diameter).

A model trained on many magnifications (the built-in nuclei model: nuclei 10 to 60 pixels
across) still segments best near the middle of that range: its ``object_diameter``, a width as
:func:`object_diameter` measures it. Such a model predicts the image at its own scale, measures
the objects of its class 2 (:func:`.predict.measure_scale`), and the image is then predicted
(and fine-tuned) at ``object_diameter / measured`` times its size; outputs come back at the
image's own size. The width is measured on the class mask rather than on the objects the
watershed cuts, because a model fine-tuned at one scale still finds the class at another but
cuts its objects there less reliably. Factors near 1 are taken as 1.
"""

import numpy as np
from scipy import ndimage

from .resizing import SCALE

AUTO = "auto"
"""The scale that predicting and fine-tuning measure (:func:`.predict.measure_scale`)."""
SAME = (0.8, 1.25)
"""An automatic factor in this range is taken as 1 (the model's range covers it)."""
FEWEST = 5
"""Fewer objects than this measure nothing: the factor stays 1."""
MIN_AREA = 10
"""Regions smaller than this many pixels (specks) are not measured."""
SAMPLE = 512
"""Sides of the centre crop of (at most three) slices that the size is measured on."""


def object_diameter(mask: np.ndarray) -> float | None:
    """The typical width, in pixels, of the objects of a (Y, X) or (N, Y, X) class ``mask``.

    Each connected region's width is twice the largest distance from its pixels to its edge
    (the widest disc that fits), which neither touching objects (one region) nor an object
    cut in two change much; the typical width is their median weighted by area (the width of
    the regions that hold half of the mask), so that specks count little. Regions under
    MIN_AREA pixels are left out, and so are regions touching the slice's edge while FEWEST
    others remain; None with fewer than FEWEST regions."""
    mask = np.asarray(mask, dtype=bool)
    inner, edge = [], []
    for piece in mask.reshape(-1, *mask.shape[-2:]):
        regions, count = ndimage.label(piece)
        if not count:
            continue
        index = np.arange(1, count + 1)
        widths = 2 * np.asarray(
            ndimage.maximum(ndimage.distance_transform_edt(piece), regions, index)
        )
        areas = np.bincount(regions.ravel(), minlength=count + 1)[1:]
        border = np.zeros(count + 1, bool)
        for side in (regions[0], regions[-1], regions[:, 0], regions[:, -1]):
            border[side] = True
        big = areas >= MIN_AREA
        inner.extend(zip(widths[big & ~border[1:]], areas[big & ~border[1:]], strict=True))
        edge.extend(zip(widths[big & border[1:]], areas[big & border[1:]], strict=True))
    measured = inner if len(inner) >= FEWEST else inner + edge
    if len(measured) < FEWEST:
        return None
    widths, areas = np.array(sorted(measured)).T
    return float(widths[np.searchsorted(np.cumsum(areas), areas.sum() / 2)])


def scale_from(labels: np.ndarray, target: float) -> tuple[float, float | None]:
    """``(factor, width)`` from predicted class ids: the width of the regions of class 2 (the
    first class after background) and the factor that brings it to ``target``."""
    diameter = object_diameter(np.asarray(labels) == 2)
    return factor_for(diameter, target), diameter


def factor_for(diameter: float | None, target: float | None) -> float:
    """The factor that brings objects of ``diameter`` pixels to ``target`` (1 when either is
    unknown, or the factor is within SAME), kept within SCALE."""
    if not diameter or not target:
        return 1.0
    factor = target / diameter
    if SAME[0] <= factor <= SAME[1]:
        return 1.0
    return float(np.clip(factor, SCALE.low, SCALE.high))
