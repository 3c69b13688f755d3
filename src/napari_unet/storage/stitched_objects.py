"""Objects of a zarr volume, cut block by block (in this process or on a dask cluster) and
stitched across block borders (see :mod:`..engine.stitching`).

Prediction leaves the labels (level 0) and the objects' class probability in the output's
hidden folder. Each *cut* task cuts one block with its halo and keeps the result in a scratch
array of its own; *match* tasks compare neighbouring blocks where they overlap; the ids are
joined in this process (union-find); each *write* task writes one block's core, exactly one
chunk of the instances array, so no two tasks write the same bytes.
"""

import math
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..engine.objects import ObjectSettings
from ..engine.stitching import Block, face_matches, global_ids, neighbours, plan_blocks
from ..engine.volume_objects import find_volume_objects

SCRATCH = "scratch"
PROBABILITY = f"{SCRATCH}/class_probability"
INSTANCES = "labels/instances"
BLOCK_SLICES = 32
"""Slices in a block's core (in-plane, a block's core is one output chunk)."""
HALO = 32
"""Pixels of context around a block, in the plane (in z, as many pixels' worth of slices):
objects smaller than this come out as if cut on the whole volume."""


@dataclass(frozen=True)
class ObjectsJob:
    """What the objects' tasks need: the output's folder, the class and the settings."""

    folder: str
    instances_of: int
    split: float
    min_size: int
    z_spacing: float


def block_shape(shape: tuple[int, int, int], chunk: int, z_spacing: float) -> tuple:
    """(core, halo) of the blocks of a (Z, Y, X) volume whose output chunks are ``chunk``."""
    core = (min(BLOCK_SLICES, shape[0]), chunk, chunk)
    halo = (math.ceil(HALO / z_spacing), HALO, HALO)
    return core, halo


def create_instances(root, shape: tuple[int, int, int], core: tuple, placement) -> None:
    """The instances array (an OME-Zarr labels image, chunked as the blocks' cores, placed
    as ``placement`` says: a ``volumes.Placement``) and the scratch array of the class
    probability, in the output group ``root``."""
    root.create_array(PROBABILITY, shape=shape, chunks=(1, *core[1:]), dtype=np.float32)
    labels = root.require_group("labels")
    labels.attrs["labels"] = ["instances"]
    instances = root.require_group(INSTANCES)
    instances.create_array("0", shape=shape, chunks=core, dtype=np.uint32, fill_value=0)
    instances.attrs.update(
        {
            "multiscales": [
                {
                    "version": "0.4",
                    "name": "objects",
                    "axes": list(placement.axes),
                    "datasets": [
                        {"path": "0", "coordinateTransformations": placement.transforms()}
                    ],
                }
            ],
            "image-label": {"version": "0.4"},
        }
    )


def cut_objects(
    job: ObjectsJob, shape: tuple, core: tuple, halo: tuple, client=None
) -> Generator[int, None, None]:
    """Cut, match and write every block; yield after each cut and each write."""
    blocks = plan_blocks(shape, core, halo)
    faces = neighbours(blocks)
    if client is None:
        cuts = []
        for block in blocks:
            cuts.append(cut_block(job, block))
            yield 1
        matches = [(a.index, b.index, match_face(job, a, b, band)) for a, b, band in faces]
    else:
        from distributed import as_completed

        remote = client.scatter(job, broadcast=True)
        futures = client.map(cut_block, [remote] * len(blocks), blocks, pure=False)
        for future in as_completed(futures):
            future.result()
            yield 1
        cuts = client.gather(futures)
        found = client.map(
            match_face,
            [remote] * len(faces),
            [a for a, _, _ in faces],
            [b for _, b, _ in faces],
            [band for _, _, band in faces],
            pure=False,
        )
        matches = [
            (a.index, b.index, pairs)
            for (a, b, _), pairs in zip(faces, client.gather(found), strict=True)
        ]
    counts = [count for count, _ in cuts]
    lookups = global_ids(counts, [present for _, present in cuts], matches)
    if client is None:
        for block, lookup in zip(blocks, lookups, strict=True):
            write_block(job, block, lookup)
            yield 1
    else:
        futures = client.map(write_block, [remote] * len(blocks), blocks, lookups, pure=False)
        for future in as_completed(futures):
            future.result()
            yield 1


def _open(job: ObjectsJob, path: str):
    import zarr

    return zarr.open_array(str(Path(job.folder) / path), mode="r+")


def _block_path(block: Block) -> str:
    return f"{SCRATCH}/blocks/{block.index}"


def cut_block(job: ObjectsJob, block: Block) -> tuple[int, np.ndarray]:
    """Cut one block with its halo; keep the cut in its own scratch array; return its number
    of ids and the ids in its core."""
    import zarr

    box = block.slices(block.extended)
    probability = _open(job, PROBABILITY)[box]
    mask = _open(job, "0")[box] == job.instances_of
    settings = ObjectSettings(split=job.split, min_size=job.min_size)
    cut = find_volume_objects(probability, mask, settings, job.z_spacing)
    zarr.open_array(
        str(Path(job.folder) / _block_path(block)),
        mode="w",
        shape=cut.shape,
        dtype=np.uint32,
        chunks=tuple(min(n, c) for n, c in zip(cut.shape, (8, 512, 512), strict=True)),
        zarr_format=2,
    )[...] = cut
    return int(cut.max()), np.unique(cut[block.local(block.core)])


def match_face(job: ObjectsJob, a: Block, b: Block, band: tuple) -> np.ndarray:
    """Pairs of ids of blocks ``a`` and ``b`` that are one object (see face_matches)."""
    first = _open(job, _block_path(a))[a.local(band)]
    second = _open(job, _block_path(b))[b.local(band)]
    return face_matches(first, second)


def write_block(job: ObjectsJob, block: Block, lookup: np.ndarray) -> None:
    """Write one block's core with the volume's ids."""
    cut = _open(job, _block_path(block))[block.local(block.core)]
    _open(job, f"{INSTANCES}/0")[block.slices()] = lookup[cut]
