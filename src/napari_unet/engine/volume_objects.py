"""Objects of one class in a volume: one object, one id through z.

The same rule as for slices (see :mod:`.objects`): a height map, the distance to the border of
the class times the squared class probability, flooded from its peaks, and peaks merged by the
relative-saddle rule. In a volume the distance is anisotropic: a step in z counts ``z_spacing``
pixels (the z step over the pixel size). Connectivity is 3D and ``min_size`` counts voxels.

Memory stays bounded by working on one connected piece of the class at a time: the height map
of a piece depends on its own voxels only (the nearest voxel outside the class is also the
nearest voxel outside the piece), so each piece is cut within its bounding box plus the reach
of the smoothing; a piece too big for that (dense tissue, where touching nuclei make one piece
of most of the volume) is cut in blocks with a halo and stitched. The whole volume holds only
the mask and one int32 array of ids.
"""

import math

import numpy as np
from scipy import ndimage

from .checks import Bound
from .errors import UNetError
from .objects import ObjectSettings, renumber, split_by_saddles
from .stitching import face_matches, global_ids, neighbours, plan_blocks

Z_SPACING = Bound("z spacing (z step / pixel size)", float, 0, above=True)
SMOOTHING = 1.0
"""The height map's smoothing, in pixels (as for slices); in z, in z steps: 1 / z_spacing."""
FULL = np.ones((3, 3, 3), dtype=bool)
LARGEST_PIECE = 2**21
"""Pieces whose bounding box holds more voxels are cut in blocks (a piece cut at once needs
some 30 bytes a voxel of its box)."""
BLOCK_CORE, BLOCK_HALO = (16, 128, 128), 32
"""The blocks of such a piece, and their halo in pixels (in z, as many pixels' worth)."""


def find_volume_objects(
    probability: np.ndarray,
    mask: np.ndarray,
    settings: ObjectSettings | None = None,
    z_spacing: float = 1.0,
) -> np.ndarray:
    """Object ids (1, 2, ... in uint32; 0 elsewhere) of a (Z, Y, X) volume.

    ``probability`` is the class probability (read one piece at a time: numpy or any array
    that slices), ``mask`` where the class won the argmax; ``z_spacing`` is the z step over
    the pixel size.
    """
    settings = settings or ObjectSettings()
    settings.check()
    z_spacing = Z_SPACING.check(z_spacing)
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3 or tuple(np.shape(probability)) != mask.shape:
        raise UNetError(
            f"volume objects are cut from one (Z, Y, X) stack: a mask of shape {mask.shape} "
            f"and a probability of shape {tuple(np.shape(probability))} do not make one"
        )
    ids, _ = ndimage.label(mask, structure=FULL, output=np.int32)
    next_id = 0
    for piece, box in enumerate(ndimage.find_objects(ids), start=1):
        if box is None:
            continue
        inside = ids[box] == piece
        if np.count_nonzero(inside) < settings.min_size:
            ids[box][inside] = 0
            continue
        if settings.split == 0:
            ids[box][inside] = -(next_id + 1)
            next_id += 1
        elif math.prod(b.stop - b.start for b in box) > LARGEST_PIECE:
            del inside
            next_id += _cut_in_blocks(probability, ids, piece, box, settings, z_spacing, next_id)
        else:
            objects = _cut_piece(probability, inside, box, settings, z_spacing)
            ids[box][inside] = -(objects[inside] + next_id)  # negative: already cut
            next_id += int(objects.max())
    np.negative(ids, out=ids)
    return ids.view(np.uint32)


def _cut_in_blocks(probability, ids, piece: int, box, settings, z_spacing: float, first: int):
    """Cut a piece too big to cut at once in blocks with a halo, stitched as in
    :mod:`.stitching`; its voxels in ``ids`` get ``-(first + 1)``, ``-(first + 2)``, ...;
    return how many objects it holds. Only one layer of blocks' bands is kept at a time."""
    corner = [b.start for b in box]
    shape = [b.stop - b.start for b in box]
    halo = (math.ceil(BLOCK_HALO / z_spacing), BLOCK_HALO, BLOCK_HALO)
    blocks = plan_blocks(shape, BLOCK_CORE, halo)
    faces = neighbours(blocks)
    waiting: dict[tuple[int, int], np.ndarray] = {}
    counts, present, matches, offset = [], [], [], first
    for block in blocks:
        extended = _shifted(block.slices(block.extended), corner)
        ours = ids[extended]  # the piece: its id, or (where cut already) below -first
        cut = _cut_piece(
            probability, (ours == piece) | (ours < -first), extended, settings, z_spacing
        )
        core = _shifted(block.slices(), corner)
        inside = ids[core] == piece
        local = cut[block.local(block.core)][inside]
        ids[core][inside] = -(local + offset)
        present.append(np.unique(local))
        counts.append(int(cut.max()))
        offset += counts[-1]
        for a, b, band in faces:
            if a.index == block.index:
                waiting[a.index, b.index] = cut[a.local(band)].copy()
            elif b.index == block.index:
                pairs = face_matches(waiting.pop((a.index, b.index)), cut[b.local(band)])
                matches.append((a.index, b.index, pairs))
    lookups = global_ids(counts, present, matches)
    joined = np.concatenate([lookup[1:] for lookup in lookups]).astype(np.int32)
    for z in range(box[0].start, box[0].stop):
        plane = ids[(z, *box[1:])]
        mine = plane < -first
        plane[mine] = -(first + joined[-plane[mine] - first - 1])
    return int(joined.max(initial=0))


def _shifted(slices, corner) -> tuple[slice, ...]:
    return tuple(slice(s.start + c, s.stop + c) for s, c in zip(slices, corner, strict=True))


def _cut_piece(probability, inside, box, settings: ObjectSettings, z_spacing: float):
    """Objects (1, 2, ...) of one connected piece, ``inside`` its bounding ``box``, by the
    relative-saddle rule; the probability is read around the box as far as the smoothing
    reaches, so that it is smoothed as in the whole volume."""
    sigma = (SMOOTHING / z_spacing, SMOOTHING, SMOOTHING)
    reach = [int(4 * s + 0.5) + 1 for s in sigma]  # gaussian_filter's radius, and one
    region = tuple(
        slice(max(b.start - r, 0), min(b.stop + r, n))
        for b, r, n in zip(box, reach, np.shape(probability), strict=True)
    )
    within = tuple(
        slice(b.start - g.start, b.stop - g.start) for b, g in zip(box, region, strict=True)
    )
    piece = np.zeros([g.stop - g.start for g in region], dtype=bool)
    piece[within] = inside
    height = _height(np.asarray(probability[region], dtype=np.float32), piece, z_spacing, sigma)
    return renumber(split_by_saddles(height, piece, settings, FULL)[within]).astype(np.int32)


def _height(probability, inside, z_spacing: float, sigma) -> np.ndarray:
    """The anisotropic distance to the border of the piece times the squared class
    probability (both smoothed), inside the piece."""
    distance = ndimage.gaussian_filter(anisotropic_distance(inside, z_spacing), sigma)
    confidence = np.clip(ndimage.gaussian_filter(np.nan_to_num(probability), sigma), 0.0, 1.0)
    np.multiply(distance, np.square(confidence, out=confidence), out=distance)
    distance[~inside] = 0
    return distance


def anisotropic_distance(inside: np.ndarray, z_spacing: float) -> np.ndarray:
    """The Euclidean distance (float32, in pixels; a z step counts ``z_spacing``) from each
    voxel of ``inside`` to the nearest voxel outside it; the volume's own faces are no border.

    Exact and light: the 2D distance of each slice, then along z the lower envelope of the
    parabolas, stopped once a farther slice cannot be nearer (scipy's 3D transform would hold
    some 50 bytes a voxel).
    """
    squared = np.full(inside.shape, np.inf, dtype=np.float32)
    for z, plane in enumerate(inside):
        if not plane.all():
            squared[z] = np.square(ndimage.distance_transform_edt(plane))
    result = squared.copy()
    for step in range(1, len(squared)):
        reach = np.float32((step * z_spacing) ** 2)
        if reach >= result.max():
            break
        np.minimum(result[step:], squared[:-step] + reach, out=result[step:])
        np.minimum(result[:-step], squared[step:] + reach, out=result[:-step])
    result[np.isinf(result)] = 1  # nothing outside at all: a flat height, from the probability
    return np.sqrt(result, out=result)
