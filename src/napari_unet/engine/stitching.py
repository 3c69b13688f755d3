"""Objects of a volume too big to cut at once: cut block by block, each block with a halo of
context, and stitched across block borders.

Each block's objects are cut on its core plus a halo (:func:`plan_blocks`). Where two blocks
meet, both have cut the band around their common face (the halo of each reaches into the
other), so an object crossing the face has an id in each block covering about the same voxels
there: ids whose overlap in that band is more than half their union are one object
(:func:`face_matches`). The matches join ids across blocks (union-find, :func:`global_ids`),
and each block's core is written with the joined ids. Objects smaller than the halo come out
exactly as cut on the whole volume, up to a renumbering.
"""

from dataclasses import dataclass

import numpy as np

from .objects import ObjectSettings


@dataclass(frozen=True)
class Block:
    """Block ``index``: its ``core`` (written) and ``extended`` (cut: core and halo) boxes, as
    (start, stop) per axis of the volume."""

    index: int
    core: tuple[tuple[int, int], ...]
    extended: tuple[tuple[int, int], ...]

    def slices(self, box=None) -> tuple[slice, ...]:
        """``box`` (default the core) as slices of the volume."""
        return tuple(slice(a, b) for a, b in (box or self.core))

    def local(self, box) -> tuple[slice, ...]:
        """``box`` as slices of this block's extended array."""
        return tuple(
            slice(a - e, b - e) for (a, b), (e, _) in zip(box, self.extended, strict=True)
        )


def plan_blocks(shape, core, halo) -> list[Block]:
    """The blocks of a volume of ``shape``, of ``core`` voxels a side per axis (the last ones
    smaller), each extended by ``halo`` voxels per axis (within the volume)."""
    starts = [range(0, n, c) for n, c in zip(shape, core, strict=True)]
    grid = np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, len(shape))
    blocks = []
    for index, corner in enumerate(grid):
        box = tuple(
            (int(a), min(int(a) + c, n)) for a, c, n in zip(corner, core, shape, strict=True)
        )
        extended = tuple(
            (max(a - h, 0), min(b + h, n)) for (a, b), h, n in zip(box, halo, shape, strict=True)
        )
        blocks.append(Block(index, box, extended))
    return blocks


def neighbours(blocks: list[Block]) -> list[tuple[Block, Block, tuple]]:
    """Pairs of blocks sharing a face, each with the band around that face within both cores
    and both extended boxes (where both have cut objects): ``(a, b, band)``."""
    by_corner = {tuple(a for a, _ in block.core): block for block in blocks}
    pairs = []
    for block in blocks:
        for axis, (start, stop) in enumerate(block.core):
            corner = [a for a, _ in block.core]
            corner[axis] = stop
            other = by_corner.get(tuple(corner))
            if other is None:
                continue
            band = list(block.core)
            low = max(start, other.extended[axis][0])
            high = min(other.core[axis][1], block.extended[axis][1])
            band[axis] = (low, high)
            pairs.append((block, other, tuple(band)))
    return pairs


def face_matches(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairs (id in ``a``, id in ``b``) of two cuts of the same band whose overlap there is
    more than half their union (so each id matches at most one)."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 2), dtype=np.int64)
    a_ids, a_index = np.unique(a, return_inverse=True)
    b_ids, b_index = np.unique(b, return_inverse=True)
    a_index, b_index = a_index.ravel(), b_index.ravel()
    stride = len(b_ids)
    pairs, shared = np.unique(
        a_index[both.ravel()].astype(np.int64) * stride + b_index[both.ravel()],
        return_counts=True,
    )
    first, second = pairs // stride, pairs % stride
    union = np.bincount(a_index)[first] + np.bincount(b_index)[second] - shared
    keep = shared * 2 > union
    return np.stack([a_ids[first[keep]], b_ids[second[keep]]], axis=1).astype(np.int64)


def global_ids(
    counts: list[int], present: list[np.ndarray], matches: list[tuple[int, int, np.ndarray]]
) -> list[np.ndarray]:
    """Per block, a lookup from its ids (1..counts[i]) to the volume's (0 kept; 1, 2, ... with
    no gaps), given the ids ``present`` in each block's core and the ``matches`` (block a,
    block b, pairs of their ids) that join ids of neighbouring blocks into one object."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    parent = np.arange(int(offsets[-1]) + 1)  # 0 unused: ids are 1-based in each block

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b, pairs in matches:
        for i, j in pairs:
            x, y = root(int(offsets[a] + i)), root(int(offsets[b] + j))
            if x != y:
                parent[max(x, y)] = min(x, y)
    roots = np.array([root(i) for i in range(len(parent))])
    written = np.zeros(len(parent), dtype=bool)
    for k, ids in enumerate(present):
        written[roots[offsets[k] + ids[ids > 0]]] = True
    numbers = np.cumsum(written).astype(np.uint32)
    final = np.where(written[roots], numbers[roots], 0).astype(np.uint32)
    return [
        np.concatenate([[0], final[offsets[k] + 1 : offsets[k + 1] + 1]]).astype(np.uint32)
        for k in range(len(present))
    ]


def find_volume_objects_blockwise(
    probability,
    mask,
    settings: ObjectSettings | None = None,
    z_spacing: float = 1.0,
    core=(32, 256, 256),
    halo=(16, 32, 32),
) -> np.ndarray:
    """:func:`find_volume_objects` block by block, stitched (the same, up to a renumbering, for
    objects smaller than the halo); ``probability`` and ``mask`` are read a block at a time."""
    from .volume_objects import find_volume_objects  # which cuts its big pieces in blocks

    shape = tuple(np.shape(mask))
    blocks = plan_blocks(shape, core, halo)
    cuts = []
    for block in blocks:
        box = block.slices(block.extended)
        region_mask = np.asarray(mask[box], dtype=bool)
        cuts.append(find_volume_objects(probability[box], region_mask, settings, z_spacing))
    matches = [
        (
            a.index,
            b.index,
            face_matches(cuts[a.index][a.local(band)], cuts[b.index][b.local(band)]),
        )
        for a, b, band in neighbours(blocks)
    ]
    present = [np.unique(cut[b.local(b.core)]) for b, cut in zip(blocks, cuts, strict=True)]
    lookups = global_ids([int(cut.max()) for cut in cuts], present, matches)
    objects = np.zeros(shape, dtype=np.uint32)
    for block, cut, lookup in zip(blocks, cuts, lookups, strict=True):
        objects[block.slices()] = lookup[cut[block.local(block.core)]]
    return objects
