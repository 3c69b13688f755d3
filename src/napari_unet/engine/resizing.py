"""Resizing slices for a model that works at another scale (see :mod:`.object_size`)."""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .annotations import BACKGROUND
from .checks import Bound

SCALE = Bound("scale factor", float, 0.25, 4.0)
"""The factors an image may be rescaled by (also the range an automatic factor is kept in)."""


def scaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """A (Y, X) shape rescaled by ``factor`` (at least one pixel each way)."""
    return tuple(max(1, round(side * factor)) for side in shape)


def resize(data: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A (C, Y, X) or (N, C, Y, X) float tensor resized to ``shape`` (Y, X): bilinear, smoothed
    first when it shrinks."""
    shape = tuple(int(side) for side in shape)
    if tuple(data.shape[-2:]) == shape:
        return data
    batch = data if data.ndim == 4 else data[None]
    shrinks = shape[0] < data.shape[-2] or shape[1] < data.shape[-1]
    out = F.interpolate(batch, size=shape, mode="bilinear", antialias=shrinks)
    return out if data.ndim == 4 else out[0]


def resize_annotations(labels: np.ndarray, factor: float) -> np.ndarray:
    """(N, Y, X) annotation ids (0 = not annotated) rescaled by ``factor``: each new pixel
    takes the id covering most of it, and stays annotated where that id covers at least half
    of what a stroke one old pixel wide would: such strokes survive shrinking. Objects kept
    apart by thin background lines (from ``from_instances``, or painted) stay apart: where two
    of them meet after shrinking, a line one new pixel wide is background between them."""
    shape = scaled_shape(labels.shape[1:], factor)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if not len(ids):
        return np.zeros((len(labels), *shape), labels.dtype)
    onehot = torch.from_numpy(np.stack([labels == i for i in ids], axis=1).astype(np.float32))
    if factor < 1:
        cover = F.interpolate(onehot, size=shape, mode="area")
        enough = factor / 2
    else:
        cover = F.interpolate(onehot, size=shape, mode="nearest-exact")
        enough = 0.5
    best, index = cover.max(dim=1)
    out = np.asarray(ids, labels.dtype)[index.numpy()]
    out[best.numpy() < enough] = 0
    if factor < 1:
        out[_merged(labels, out)] = BACKGROUND
    return out


def _merged(labels: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Object pixels of the shrunk ``out`` that touch (4-neighbours) another object of their
    class in ``labels`` than their own, one side of each contact (objects of two classes may
    touch): each object pixel belongs to the object found at its centre, or to the nearest
    one found."""
    regions = _regions(labels)
    rows = _centres(labels.shape[1], out.shape[1])
    columns = _centres(labels.shape[2], out.shape[2])
    owner = np.where(out > BACKGROUND, regions[:, rows][:, :, columns], 0)
    for plane, kept in zip(owner, out > BACKGROUND, strict=True):
        unknown = kept & (plane == 0)
        if unknown.any() and (plane > 0).any():
            _, (y, x) = ndimage.distance_transform_edt(plane == 0, return_indices=True)
            plane[unknown] = plane[y[unknown], x[unknown]]
    merged = np.zeros(out.shape, bool)
    for axis in (1, 2):
        lower = tuple(slice(None, -1) if i == axis else slice(None) for i in range(3))
        upper = tuple(slice(1, None) if i == axis else slice(None) for i in range(3))
        apart = (owner[lower] > 0) & (owner[upper] > 0) & (owner[lower] != owner[upper])
        merged[upper] |= apart & (out[lower] == out[upper])
    return merged


def _centres(old: int, new: int) -> np.ndarray:
    """The old index at the centre of each of ``new`` pixels spanning ``old``."""
    return np.minimum(((np.arange(new) + 0.5) * old / new).astype(int), old - 1)


def _regions(labels: np.ndarray) -> np.ndarray:
    """Each connected region (4-neighbours, in its slice) of one id >= 2 numbered apart."""
    regions = np.zeros(labels.shape, np.int32)
    count = 0
    for index, plane in enumerate(labels):
        for label in np.unique(plane[plane > BACKGROUND]):
            found, number = ndimage.label(plane == label)
            regions[index][found > 0] = found[found > 0] + count
            count += number
    return regions
