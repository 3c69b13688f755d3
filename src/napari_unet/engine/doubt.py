"""How doubtful each found object is, as a map for ranking where to annotate next.

Most of the pixel uncertainty lies on object borders, everywhere, so regions dense in edges
rank first by it, yet their truth teaches little. The mistakes that cost objects are merged
and split nuclei and missed or spurious ones, and each leaves a sign on the object found:

- the model is unsure inside it (its mean uncertainty);
- it is less convex than the median object: two merged nuclei make a peanut (full doubt at
  CONCAVE more of its convex hull left empty);
- its size is far from the median object's: merges are large, fragments small (full doubt at
  a factor of ODD_SIZE either way).

An object's doubt is the mean of the three (0..1). The doubt map holds, on an object's pixels,
how much more doubtful it is than the median object (most objects are right: a crowd of them,
each with its unsure outline, must not outrank one merge); elsewhere it holds the pixel
uncertainty, where a missed nucleus shows, except on the RING pixels around objects (a square),
the unsure edges again.
"""

import numpy as np
from scipy import ndimage

CONCAVE = 0.1
ODD_SIZE = 4.0
RING = 2
DIRECTIONS = 16
"""Support lines of the hull estimate: it exceeds the true hull of a disc by 1.3%."""


def doubt_map(instances: np.ndarray, uncertainty: np.ndarray) -> np.ndarray:
    """The doubt (float32, 0..1) of a (Y, X) or (Z, Y, X) prediction: each object's doubt
    beyond the median object's on its pixels, the pixel ``uncertainty`` away from objects.
    Objects are taken slice by slice (ids of a volume's objects span slices; their
    cross-sections are judged)."""
    uncertainty = np.asarray(uncertainty, np.float32)
    instances = np.asarray(instances)
    flat_objects = instances.reshape(-1, *instances.shape[-2:])
    flat_unsure = uncertainty.reshape(flat_objects.shape)
    areas = [np.bincount(o.ravel()) for o in flat_objects]
    sizes = np.concatenate([a[1:][a[1:] > 0] for a in areas])
    median_area = float(np.median(sizes)) if len(sizes) else 1.0
    doubts = [
        object_doubts(objects, unsure, median_area) if len(area) > 1 else np.zeros(1)
        for objects, unsure, area in zip(flat_objects, flat_unsure, areas, strict=True)
    ]
    present = np.concatenate([d[1:][a[1:] > 0] for d, a in zip(doubts, areas, strict=True)])
    typical = float(np.median(present)) if len(present) else 0.0
    out = np.empty(flat_objects.shape, np.float32)
    for z, doubt in enumerate(doubts):
        objects, unsure = flat_objects[z], flat_unsure[z]
        near = ndimage.maximum_filter(objects > 0, size=2 * RING + 1)
        excess = np.maximum(doubt - typical, 0).astype(np.float32)
        out[z] = np.where(objects > 0, excess[objects], np.where(near, 0, unsure))
    return out.reshape(uncertainty.shape)


def object_doubts(objects: np.ndarray, unsure: np.ndarray, median_area: float) -> np.ndarray:
    """The doubt of every id of a (Y, X) label image (index = id; 0 for absent ids)."""
    ids = objects.ravel().astype(np.int64)
    n = int(ids.max()) + 1
    area = np.bincount(ids, minlength=n).astype(np.float64)
    mean_unsure = np.bincount(ids, weights=unsure.ravel(), minlength=n) / np.maximum(area, 1)
    present = area > 0
    present[0] = False
    deficit = 1 - area / np.maximum(hull_areas(objects, n), 1)
    concave = np.clip((deficit - np.median(deficit[present])) / CONCAVE, 0, 1)
    odd = np.abs(np.log(np.maximum(area, 1) / max(median_area, 1)))
    odd_size = np.clip(odd / np.log(ODD_SIZE), 0, 1)
    doubt = (np.clip(mean_unsure, 0, 1) + concave + odd_size) / 3
    return np.where(present, doubt, 0).astype(np.float32)


def hull_areas(objects: np.ndarray, n: int) -> np.ndarray:
    """About the area of each id's convex hull, all objects at once: the polygon of the
    support lines, in DIRECTIONS directions, of its pixels as discs of one pixel across."""
    ys, xs = np.nonzero(_edges(objects))
    ids = objects[ys, xs].astype(np.int64)
    order = np.argsort(ids, kind="stable")
    ys, xs, ids = ys[order], xs[order], ids[order]
    present, starts = np.unique(ids, return_index=True)
    angles = 2 * np.pi * np.arange(DIRECTIONS) / DIRECTIONS
    normals = np.stack([np.cos(angles), np.sin(angles)], 1)
    support = np.zeros((n, DIRECTIONS))
    for k, (ny, nx) in enumerate(normals):
        support[present, k] = np.maximum.reduceat(ys * ny + xs * nx, starts) + 0.5
    nxt = np.roll(np.arange(DIRECTIONS), -1)
    corner = _intersections(normals, normals[nxt], support, support[:, nxt])
    y, x = corner[..., 0], corner[..., 1]
    return 0.5 * np.abs((y * np.roll(x, -1, 1) - x * np.roll(y, -1, 1)).sum(1))


def _edges(objects: np.ndarray) -> np.ndarray:
    """The pixels of objects with a 4-neighbour outside their object (where hulls touch)."""
    padded = np.pad(objects, 1)
    inner = padded[1:-1, 1:-1]
    edge = (inner != padded[:-2, 1:-1]) | (inner != padded[2:, 1:-1])
    edge |= (inner != padded[1:-1, :-2]) | (inner != padded[1:-1, 2:])
    return edge & (inner > 0)


def _intersections(n1, n2, h1, h2) -> np.ndarray:
    """Where the lines n1 · p = h1 and n2 · p = h2 cross, for every object and direction."""
    det = n1[:, 0] * n2[:, 1] - n1[:, 1] * n2[:, 0]
    y = (h1 * n2[:, 1] - h2 * n1[:, 1]) / det
    x = (n1[:, 0] * h2 - n2[:, 0] * h1) / det
    return np.stack([y, x], -1)
