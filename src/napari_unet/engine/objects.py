"""Objects of one class, each with its own id, from the predicted class probability.

Touching objects are split by a watershed on a height map: the distance to the border of the
class mask times the squared class probability. It is high in the middle of each object and
dips where two objects meet, both where the mask narrows (a neck) and where the network is
unsure. Each peak's basin is an object unless the pass (saddle) towards a higher peak is at
least ``split`` times the peak's own height; then it joins that peak's object. The criterion is
relative, so the same ``split`` works for small and large objects.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components
from skimage.segmentation import watershed

from .checks import Bound, bound, check_fields
from .errors import UNetError


@dataclass
class ObjectSettings:
    """How objects are cut out of the probability of their class.

    ``split``: how eagerly touching objects are split, from 0 (never: connected components) to
    1 (at any dip); at 0.9 two objects are cut where the pass between them is lower than 90% of
    the smaller one's height. ``min_size``: objects smaller than this many pixels join the
    touching object across the highest pass, or are dropped when alone.
    """

    split: float = bound(0.9, Bound("split (0 never splits)", float, 0, 1))
    min_size: int = bound(10, Bound("minimum object size (pixels)", int, 0, 2**31))

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        check_fields(self)


def find_objects(
    probability: np.ndarray, mask: np.ndarray, settings: ObjectSettings | None = None
) -> np.ndarray:
    """Object ids (1, 2, ...; 0 elsewhere) of a (Y, X) slice.

    ``probability`` is the class probability, ``mask`` where the class won the argmax.
    """
    settings = settings or ObjectSettings()
    settings.check()
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or np.shape(probability) != mask.shape:
        raise UNetError(
            f"objects are cut from one (Y, X) slice: a mask of shape {mask.shape} and a "
            f"probability of shape {np.shape(probability)} do not make one"
        )
    components = connected_components(mask)
    if settings.min_size > 1:
        sizes = np.bincount(components.ravel())
        big = sizes >= settings.min_size
        big[0] = False
        mask = big[components]
        components = np.where(mask, components, 0)
    if settings.split == 0 or not mask.any():
        return renumber(components)
    height = _height(np.nan_to_num(np.asarray(probability, dtype=np.float32)), mask)
    return renumber(split_by_saddles(height, mask, settings, np.ones((3, 3))))


def split_by_saddles(
    height: np.ndarray, mask: np.ndarray, settings: ObjectSettings, structure: np.ndarray
) -> np.ndarray:
    """Object ids (not yet consecutive) of ``mask``, in 2D or 3D: the basins of the height
    map's peaks, joined across passes by the relative-saddle rule, small ones merged."""
    peaks = (height == ndimage.maximum_filter(height, size=3)) & mask
    markers, n = ndimage.label(peaks, structure=structure, output=np.int32)
    basins = watershed(-height, markers, mask=mask)
    top = np.zeros(n + 1, dtype=np.float32)
    top[markers[peaks]] = height[peaks]
    first, second, saddle = saddles(basins, height)
    order = np.argsort(-saddle, kind="stable")
    first, second, saddle = first[order], second[order], saddle[order]
    owner = by_dynamics(top, first, second, saddle, settings.split)
    if settings.min_size > 1:
        sizes = np.bincount(basins.ravel(), minlength=n + 1)
        owner = merge_small(owner, sizes, first, second, settings.min_size)
    return owner[basins]


def _height(probability: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The distance to the border of the mask times the squared class probability (both
    smoothed over about a pixel, against pixel noise), inside the mask."""
    distance = ndimage.gaussian_filter(ndimage.distance_transform_edt(mask).astype(np.float32), 1)
    confidence = np.clip(ndimage.gaussian_filter(probability, 1.0), 0.0, 1.0)
    return np.where(mask, distance * confidence**2, 0).astype(np.float32)


def by_dynamics(top, first, second, saddle, split: float) -> np.ndarray:
    """The object (a basin id) of each basin: basins are joined along their saddles, highest
    first, as in the computation of dynamics; a peak keeps its own object if the saddle
    towards any higher peak is lower than ``split`` times its height."""
    groups = _UnionFind(len(top))
    merged_into = np.arange(len(top))
    for a, b, height in zip(first, second, saddle, strict=True):
        a, b = groups.root(a), groups.root(b)
        if a == b:
            continue
        if top[a] < top[b]:
            a, b = b, a
        groups.parent[b] = a
        if height >= split * top[b]:
            merged_into[b] = a
    owner = merged_into
    while (merged_into[owner] != owner).any():
        owner = merged_into[owner]
    return owner


def merge_small(owner, sizes, first, second, min_size: int) -> np.ndarray:
    """Objects below ``min_size`` pixels joined to the neighbour across their highest saddle
    (edges are given highest first)."""
    object_sizes = np.bincount(owner, weights=sizes, minlength=len(owner))
    groups = _UnionFind(len(owner))
    groups.parent = owner.copy()
    for a, b in zip(first, second, strict=True):
        a, b = groups.root(a), groups.root(b)
        if a != b and min(object_sizes[a], object_sizes[b]) < min_size:
            if object_sizes[a] < object_sizes[b]:
                a, b = b, a
            groups.parent[b] = a
            object_sizes[a] += object_sizes[b]
    return np.array([groups.root(i) for i in range(len(owner))])


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def root(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i


def saddles(basins: np.ndarray, height: np.ndarray) -> tuple:
    """Each pair of adjacent basins (of a slice or a volume) and the highest pass between
    them: the largest of ``min(height)`` over neighbouring pixels of the two."""
    stride = int(basins.max()) + 1
    pairs, passes = [], []
    for axis in reversed(range(basins.ndim)):
        lower = tuple(slice(None, -1) if a == axis else slice(None) for a in range(basins.ndim))
        upper = tuple(slice(1, None) if a == axis else slice(None) for a in range(basins.ndim))
        a, b = basins[lower], basins[upper]
        edge = (a != b) & (a > 0) & (b > 0)
        a, b = a[edge].astype(np.int64), b[edge].astype(np.int64)
        pairs.append(np.minimum(a, b) * stride + np.maximum(a, b))
        passes.append(np.minimum(height[lower][edge], height[upper][edge]))
    pairs, passes = np.concatenate(pairs), np.concatenate(passes)
    order = np.lexsort((passes, pairs))
    pairs, passes = pairs[order], passes[order]
    last = np.append(pairs[1:] != pairs[:-1], True)[: len(pairs)]
    return pairs[last] // stride, pairs[last] % stride, passes[last]


def renumber(objects: np.ndarray) -> np.ndarray:
    """Ids 1, 2, ... in uint32, 0 kept."""
    present = np.bincount(objects.ravel()) > 0
    present[0] = False
    lookup = np.zeros(len(present), dtype=np.uint32)
    lookup[present] = np.arange(1, int(present.sum()) + 1, dtype=np.uint32)
    return lookup[objects]
