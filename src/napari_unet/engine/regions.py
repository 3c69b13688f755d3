"""Where to annotate next: square regions of every slice, ranked by how much doubtful and not
yet annotated area they hold.

Doubt is the pixel uncertainty or, where the objects found are given, the doubt map of
:mod:`.doubt` (each object's doubt on its pixels: wrong objects rank first, not every unsure
edge). A region's score is the mean, over its pixels, of the doubt where nothing is annotated
(annotated pixels count 0), so a region the user already annotated falls to the bottom, and a
region full of confident background too. Candidates start every half region on every slice;
the best ones that do not overlap each other are kept.
"""

from dataclasses import dataclass

import numpy as np

from .checks import Bound
from .doubt import doubt_map
from .errors import UNetError

REGION_SIZE = Bound("region size (pixels)", int, 16, 4096)
DEFAULT_REGION = 256
"""About the training patch: a region a user corrects in one go."""
COUNT = Bound("number of regions", int, 1, 10_000)


@dataclass(frozen=True)
class Region:
    """A square of ``size`` pixels whose top-left corner is at (``y``, ``x``) on slice ``z``
    (clipped to the image), and its score (0..1)."""

    z: int
    y: int
    x: int
    size: int
    score: float

    def overlaps(self, other: "Region") -> bool:
        return (
            self.z == other.z
            and abs(self.y - other.y) < self.size
            and abs(self.x - other.x) < self.size
        )


def rank_regions(
    uncertainty: np.ndarray,
    annotated: np.ndarray,
    size: int = DEFAULT_REGION,
    count: int = 10,
    instances: np.ndarray | None = None,
) -> list[Region]:
    """The ``count`` best regions of a (Y, X) or (Z, Y, X) ``uncertainty`` where ``annotated``
    (same shape) is false, best first, judged by the doubt of the objects ``instances`` (same
    shape) where given; regions with nothing doubtful left are never returned."""
    size, count = REGION_SIZE.check(size), COUNT.check(count)
    if np.shape(uncertainty) != np.shape(annotated) or np.ndim(uncertainty) not in (2, 3):
        raise UNetError(
            f"the uncertainty {np.shape(uncertainty)} and the annotations "
            f"{np.shape(annotated)} must be one (Y, X) image or (Z, Y, X) stack"
        )
    if instances is not None and np.shape(instances) != np.shape(uncertainty):
        raise UNetError(
            f"the objects {np.shape(instances)} and the uncertainty {np.shape(uncertainty)} "
            "must be of one prediction"
        )
    doubt = np.nan_to_num(np.asarray(uncertainty, np.float32))
    if instances is not None:
        doubt = doubt_map(instances, doubt)
    open_unsure = np.where(annotated, 0, doubt)
    candidates = _candidates(open_unsure.reshape(-1, *open_unsure.shape[-2:]), size)
    candidates.sort(key=lambda region: -region.score)
    chosen: list[Region] = []
    for region in candidates:
        if len(chosen) == count:
            break
        if not any(region.overlaps(other) for other in chosen):
            chosen.append(region)
    return chosen


def _candidates(open_unsure: np.ndarray, size: int) -> list[Region]:
    """Every region starting on a half-region grid of every slice, with its score."""
    depth, height, width = open_unsure.shape
    side_y, side_x = min(size, height), min(size, width)
    total = np.zeros((depth, height + 1, width + 1))
    np.cumsum(open_unsure, axis=1, dtype=np.float64, out=total[:, 1:, 1:])
    np.cumsum(total[:, 1:, 1:], axis=2, out=total[:, 1:, 1:])
    ys, xs = _starts(height, side_y, size), _starts(width, side_x, size)
    y0, x0 = np.meshgrid(ys, xs, indexing="ij")
    sums = total[:, y0 + side_y, x0 + side_x] - total[:, y0, x0 + side_x]
    sums += total[:, y0, x0] - total[:, y0 + side_y, x0]
    scores = sums / (side_y * side_x)
    z, i = np.nonzero(scores.reshape(depth, -1) > 0)
    return [
        Region(int(zz), int(y0.flat[ii]), int(x0.flat[ii]), size, float(scores[zz].flat[ii]))
        for zz, ii in zip(z, i, strict=True)
    ]


def _starts(length: int, side: int, size: int) -> np.ndarray:
    """Starts every half region along one axis, the last one flush with the end."""
    starts = np.arange(0, length - side + 1, max(1, size // 2))
    return np.unique(np.append(starts, length - side))
