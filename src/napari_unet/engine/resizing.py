"""Resizing slices for a model that works at another scale (see :mod:`.object_size`)."""

import numpy as np
import torch
import torch.nn.functional as F

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
    of what a stroke one old pixel wide would: such strokes survive shrinking. So do the thin
    background lines that keep touching objects apart (:func:`separating_lines`): a new pixel
    they cover that much is background."""
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
        lines = torch.from_numpy(separating_lines(labels)[:, None].astype(np.float32))
        out[F.interpolate(lines, size=shape, mode="area")[:, 0].numpy() >= enough] = BACKGROUND
    return out


def separating_lines(labels: np.ndarray, reach: int = 2) -> np.ndarray:
    """Background pixels of (N, Y, X) annotation ids with an object (id >= 2) at most
    ``reach`` pixels away on two opposite sides (along a row, a column or a diagonal): the
    lines between touching objects that ``from_instances`` and painted objects draw, and
    background painted thinly between two objects."""
    objects = labels > BACKGROUND
    padded = np.pad(objects, ((0, 0), (reach, reach), (reach, reach)))
    height, width = objects.shape[1:]

    def near(dy: int, dx: int) -> np.ndarray:
        found = np.zeros(objects.shape, bool)
        for step in range(1, reach + 1):
            y, x = reach + step * dy, reach + step * dx
            found |= padded[:, y : y + height, x : x + width]
        return found

    lines = np.zeros(objects.shape, bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        lines |= near(dy, dx) & near(-dy, -dx)
    return lines & (labels == BACKGROUND)
