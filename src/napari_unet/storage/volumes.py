"""Big volumes predicted chunk by chunk: zarr or OME-Zarr in, OME-Zarr labels out, in this
process or on a dask.distributed cluster.

The output's level 0 is cut along its own zarr chunks (one slice by a square of pixels). Each
task reads its chunk of the input plus a margin, predicts it with the :class:`Predictor` and
writes the centre into exactly its own chunk, so tasks never write the same bytes and a task
retried after a worker died writes the same chunk again. The normalisation is measured once on
the whole input and fixed, so every chunk is normalised as the whole volume would be. Results go
to a hidden folder beside the output, renamed into place when every chunk is done. Objects of
a volume, when asked for, are then cut block by block and stitched (see stitched_objects).
"""

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..engine.checks import Bound, whole_number
from ..engine.device import resolve_device
from ..engine.errors import UNetError
from ..engine.images import (
    Normalization,
    as_stack,
    check_channel_axis,
    check_channels,
    guess_channel_axis,
)
from ..engine.objects import ObjectSettings
from ..engine.predict import INSTANCES_CLASS, MAX_BATCH_PIXELS, Predictor
from ..engine.segmenter import Segmenter
from ..engine.stitching import plan_blocks
from ..engine.tiling import context
from ..engine.volume_objects import Z_SPACING
from .loading import load_model
from .model_files import load_model_bytes, model_bytes
from .output_files import FolderOutput, check_free_space
from .stitched_objects import (
    PROBABILITY,
    SCRATCH,
    ObjectsJob,
    block_shape,
    create_instances,
    cut_objects,
)

DEFAULT_CHUNK = 1024
CHUNK = Bound("chunk size", int, 32, 16384)
WORKERS = Bound("number of workers", int, 1, 1024)
SMALLEST_LEVEL = 256
MAX_VOXELS = 2**46
"""Values an input volume may claim (64 T: far beyond any microscope's)."""
MAX_CHUNKS = 10_000
SMALL_CHUNK = 64 * 64
"""Inputs stored in more than MAX_CHUNKS chunks of fewer than SMALL_CHUNK values are refused."""
_MODELS: dict[str, Segmenter] = {}


@dataclass(frozen=True)
class Chunk:
    """One task: slice ``z``, output rows ``y0:y1`` and columns ``x0:x1``."""

    z: int
    y0: int
    y1: int
    x0: int
    x1: int


@dataclass(frozen=True)
class Job:
    """What every task needs: where to read and write, and the model (bytes, fingerprint)."""

    source: str
    array_path: str
    channel_axis: int | None
    target: str
    model: bytes
    fingerprint: str
    normalization: dict
    margin: int
    device: str
    instances_of: int | None = None
    """The objects' class: its probability is kept for cutting them (None: labels only)."""


def _zarr():
    """The zarr module (version 3), or a UNetError saying how to install it."""
    try:
        import zarr
    except ImportError:
        zarr = None
    if zarr is None or int(zarr.__version__.split(".")[0]) < 3:
        raise UNetError(
            "zarr volumes need zarr 3 and dask.distributed: "
            'pip install "napari-unet-loop[cluster]"'
        )
    return zarr


def open_volume(path: str | Path) -> tuple[object, str, int | None]:
    """A zarr array (plain, or level 0 of an OME-Zarr image), its path in the store, and its
    channel axis (from the OME-Zarr axes; None for a plain array)."""
    zarr = _zarr()
    path = Path(path)
    if not path.exists():
        raise UNetError(f"{path} does not exist")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as error:
        raise UNetError(f"{path} is not a zarr array or OME-Zarr image: {error}") from None
    if isinstance(node, zarr.Array):
        check_volume(node, path)
        return node, "", None
    array, array_path, axes = _level0(node, path)
    check_volume(array, path)
    channel_axis = axes.index("c") if "c" in axes else None
    extra = [i for i, a in enumerate(axes) if a not in ("c", "y", "x") and array.shape[i] > 1]
    if len(extra) > 1:
        raise UNetError(
            f"{path} has axes {''.join(axes)} with more than one of them longer than 1 besides "
            "channels, y and x; napari-unet-loop predicts 2D images and stacks (ZYX or TYX)"
        )
    if len(axes) == array.ndim and array.ndim > 3 + (channel_axis is not None):
        raise UNetError(f"{path}: squeeze the length-1 axes of {''.join(axes)} first")
    return array, array_path, channel_axis


def _level0(node, path: Path) -> tuple[object, str, list[str]]:
    """Level 0 of an OME-Zarr group, its path in the group and its axes, from metadata that
    may be damaged."""
    damaged = UNetError(f"{path} has damaged OME-Zarr metadata (multiscales)")
    attributes = dict(node.attrs)
    multiscales = attributes.get("ome", attributes)
    multiscales = multiscales.get("multiscales") if isinstance(multiscales, dict) else None
    if not multiscales:
        raise UNetError(f"{path} is a zarr group but not an OME-Zarr image (no multiscales)")
    try:
        first = multiscales[0]
        array_path = first["datasets"][0]["path"]
        axes = [a["name"] if isinstance(a, dict) else a for a in first.get("axes", [])]
        array = node[array_path]
    except (KeyError, IndexError, TypeError, AttributeError):
        raise damaged from None
    if not isinstance(array_path, str) or not hasattr(array, "chunks"):
        raise damaged
    if axes and (len(axes) != array.ndim or not all(isinstance(a, str) for a in axes)):
        raise UNetError(f"{path} names {len(axes)} axes for an array of {array.ndim}")
    return array, array_path, axes


@dataclass(frozen=True)
class Placement:
    """The spatial axes of an OME-Zarr image (its axes but channels, as its metadata gives
    them: names, types, units) and its level 0's scale and translation along them."""

    axes: tuple
    scale: tuple[float, ...]
    translation: tuple[float, ...] | None = None

    @classmethod
    def plain(cls, dimensions: int) -> "Placement":
        names = "zyx"[-dimensions:]
        return cls(tuple({"name": n, "type": "space"} for n in names), (1.0,) * dimensions)

    def transforms(self, level: int = 0) -> list[dict]:
        """Level ``level``'s coordinate transformations: y and x halved at each level."""
        scale = [*self.scale[:-2], *(s * 2.0**level for s in self.scale[-2:])]
        found = [{"type": "scale", "scale": scale}]
        if self.translation is not None:
            found.append({"type": "translation", "translation": list(self.translation)})
        return found


def placement(path: str | Path, dimensions: int) -> Placement:
    """The placement of the zarr image at ``path`` with ``dimensions`` spatial axes; pixels
    (a scale of 1) where its metadata does not say, or says it otherwise than OME-Zarr."""
    plain = Placement.plain(dimensions)
    try:
        attributes = dict(_zarr().open(str(path), mode="r").attrs)
        first = attributes.get("ome", attributes)["multiscales"][0]
        axes = [a if isinstance(a, dict) else {"name": a} for a in first["axes"]]
        transforms = first["datasets"][0].get("coordinateTransformations", [])
    except (KeyError, IndexError, TypeError, AttributeError, ValueError, OSError):
        return plain
    kept = [i for i, a in enumerate(axes) if a.get("name") != "c" and a.get("type") != "channel"]
    if len(kept) != dimensions:
        return plain

    def along(kind: str) -> tuple[float, ...] | None:
        for transform in transforms if isinstance(transforms, list) else []:
            if not isinstance(transform, dict) or transform.get("type") != kind:
                continue
            values = transform.get(kind)
            if (
                isinstance(values, list)
                and len(values) == len(axes)
                and all(isinstance(v, int | float) and math.isfinite(v) for v in values)
            ):
                return tuple(float(values[i]) for i in kept)
        return None

    scale = along("scale")
    if scale is not None and min(scale) <= 0:
        scale = None
    return Placement(
        tuple(dict(axes[i]) for i in kept), scale or plain.scale, along("translation")
    )


def check_volume(array, path: Path) -> None:
    """Refuse at once what the array's metadata makes impossible or hopelessly slow to read,
    before anything proportional to its claimed size is allocated or read."""
    shape, chunks = tuple(array.shape), tuple(array.chunks)
    dtype = np.dtype(array.dtype)
    if not shape or min(shape) < 1:
        raise UNetError(f"{path} is an empty array (shape {shape})")
    if dtype.kind not in "biuf":
        raise UNetError(f"{path} holds values of type {dtype}; an image holds numbers")
    if math.prod(shape) > MAX_VOXELS:
        raise UNetError(
            f"{path} claims a shape of {' x '.join(map(str, shape))} values, more than the "
            f"{MAX_VOXELS:.0e} any volume here can have: its metadata is wrong"
        )
    stored = math.prod(-(-n // max(1, c)) for n, c in zip(shape, chunks, strict=False))
    if stored > MAX_CHUNKS and math.prod(chunks) < SMALL_CHUNK:
        raise UNetError(
            f"{path} is stored in {stored} chunks of {' x '.join(map(str, chunks))} values, too "
            "small to be read in a sensible time: rechunk it first (e.g. to 1 x 512 x 512)"
        )


def output_bytes(shape: tuple[int, ...]) -> int:
    """About the size of the labels of a (Z, Y, X) volume with its pyramid, uncompressed."""
    return math.prod(shape) * 4 // 3 + 2**20


def _channel_axis(shape: tuple[int, ...], found: int | None, given) -> int | None:
    """The channel axis: the OME-Zarr's, else the one given, else guessed as for TIFFs."""
    given = check_channel_axis(given, len(shape))
    if found is None:
        return guess_channel_axis(shape) if given is None else given % len(shape)
    if given is not None and given % len(shape) != found:
        raise UNetError(f"the OME-Zarr's channels are on axis {found}, not on axis {given}")
    return found


def plan(shape: tuple[int, ...], chunk: int) -> list[Chunk]:
    """The output chunks of a (Z, Y, X) volume."""
    z, height, width = shape
    return [
        Chunk(k, y, min(y + chunk, height), x, min(x + chunk, width))
        for k in range(z)
        for y in range(0, height, chunk)
        for x in range(0, width, chunk)
    ]


class VolumePredictor:
    """Predicts ``source`` into OME-Zarr labels at ``target``; ``run()`` yields tasks done.

    With ``instances_of`` (a class id), the objects of that class are cut in 3D (the input is
    a volume whose z step is ``z_spacing`` pixels), block by block with a halo and stitched
    across blocks, into the OME-Zarr labels image ``labels/instances`` of the output (on the
    way, up to 12 bytes a voxel of scratch: the class probability, the blocks' cuts, the ids).
    """

    def __init__(
        self,
        model_path: str | Path,
        source: str | Path,
        target: str | Path,
        *,
        chunk: int = DEFAULT_CHUNK,
        device: str = "auto",
        overwrite: bool = False,
        channel_axis: int | None = None,
        instances_of: int | None = None,
        objects: ObjectSettings | None = None,
        z_spacing: float = 1.0,
    ):
        if objects is not None and not isinstance(objects, ObjectSettings):
            raise UNetError(f"objects must be ObjectSettings, not {type(objects).__name__}")
        self.objects = objects or ObjectSettings()
        self.objects.check()
        self.z_spacing = Z_SPACING.check(z_spacing)
        target = Path(target)
        if target.exists() and not overwrite:
            raise UNetError(f"{target} exists; choose another output or allow replacing it")
        if target.exists() and not (target / ".zattrs").exists():
            raise UNetError(f"{target} exists and is not an OME-Zarr; not replacing it")
        inside = Path(source).resolve(), target.resolve()
        if (
            inside[0] == inside[1]
            or inside[1] in inside[0].parents
            or (inside[0] in inside[1].parents)
        ):
            raise UNetError("the output must be neither the input nor inside it, nor contain it")
        if not target.parent.is_dir():
            raise UNetError(f"cannot write {target}: the folder {target.parent} does not exist")
        if not os.access(target.parent, os.W_OK):
            raise UNetError(f"cannot write into {target.parent}")
        segmenter = load_model(Path(model_path))  # a model file or a package
        model = model_bytes(segmenter)  # what the workers get, rather than the path
        array, array_path, found = open_volume(source)
        channel_axis = _channel_axis(tuple(array.shape), found, channel_axis)
        stack = as_stack(array, channel_axis)
        check_channels(stack, segmenter.in_channels)
        instances_of = replace(INSTANCES_CLASS, high=segmenter.n_classes).check(instances_of)
        scratch = 0 if instances_of is None else 12 * math.prod(stack.shape[:3])  # see below
        check_free_space(target.parent, output_bytes(stack.shape[:3]) + scratch)
        multiple = segmenter.config.multiple
        chunk = whole_number("chunk size", CHUNK.check(chunk), 2 * multiple)
        self.chunk = chunk // multiple * multiple
        measured = segmenter.normalization.for_image(stack)
        normalization = replace(measured, mode="fixed")
        self.shape = tuple(stack.shape[:3])
        self.flat = len(array.shape) - (channel_axis is not None) == 2
        self.placement = placement(source, 2 if self.flat else 3)
        if instances_of is not None and self.flat:
            raise UNetError(
                "a 2D image is not a volume: objects of a zarr input are cut in 3D, give a "
                "(Z, Y, X) volume"
            )
        self.target = target
        self.class_names = segmenter.class_names
        self.output = FolderOutput(target)
        self.folder = self.output.folder
        self.job = Job(
            str(Path(source).resolve()),
            array_path,
            channel_axis,
            str(self.folder.resolve()),
            model,
            hashlib.sha256(model).hexdigest(),
            normalization.to_dict(),
            context(multiple),
            device,
            instances_of,
        )

    def run(self, client=None) -> Generator[tuple[int, int], None, Path]:
        """Predict every chunk (on ``client``'s cluster when given); yield (done, total)."""
        chunks = plan(self.shape, self.chunk)
        blocks = self._blocks()
        total = len(chunks) + (2 * len(plan_blocks(self.shape, *blocks)) if blocks else 0)
        self._create_output()
        try:
            if client is None:
                for done, chunk in enumerate(chunks, start=1):
                    predict_chunk(self.job, chunk)
                    yield done, total
            else:
                from distributed import as_completed

                job = client.scatter(self.job, broadcast=True)
                futures = client.map(predict_chunk, [job] * len(chunks), chunks, pure=False)
                for done, future in enumerate(as_completed(futures), start=1):
                    future.result()
                    yield done, total
            if blocks:
                objects_job = ObjectsJob(
                    self.job.target,
                    self.job.instances_of,
                    self.objects.split,
                    self.objects.min_size,
                    self.z_spacing,
                )
                done = len(chunks)
                for _ in cut_objects(objects_job, self.shape, *blocks, client):
                    done += 1
                    yield done, total
                shutil.rmtree(self.folder / SCRATCH)
            self._write_levels()
            self.output.commit()
        finally:
            self.output.release()
        return self.target

    def _blocks(self) -> tuple | None:
        """(core, halo) of the objects' blocks; None without objects."""
        if self.job.instances_of is None:
            return None
        return block_shape(self.shape, self.chunk, self.z_spacing)

    def _create_output(self) -> None:
        root = _zarr().open_group(str(self.folder), mode="w", zarr_format=2)
        shape = self.shape[1:] if self.flat else self.shape
        chunks = (self.chunk, self.chunk) if self.flat else (1, self.chunk, self.chunk)
        root.create_array("0", shape=shape, chunks=chunks, dtype=np.uint8, fill_value=0)
        root.attrs.update(self._metadata(levels=1))
        if self.job.instances_of is not None:
            create_instances(root, self.shape, self._blocks()[0], self.placement)

    def _write_levels(self) -> None:
        """Levels 1, 2, ...: every other pixel of the level above, down to 256 pixels, one
        slice and one block of rows at a time."""
        root = _zarr().open_group(str(self.folder), mode="r+", zarr_format=2)
        level, previous = 1, root["0"]
        while min(previous.shape[-2:]) > SMALLEST_LEVEL:
            shape = (*previous.shape[:-2], *(-(-n // 2) for n in previous.shape[-2:]))
            current = root.create_array(
                str(level), shape=shape, chunks=previous.chunks, dtype=np.uint8, fill_value=0
            )
            rows = 2 * self.chunk
            for z in range(1 if self.flat else shape[0]):
                at = () if self.flat else (z,)
                for y in range(0, previous.shape[-2], rows):
                    block = previous[(*at, slice(y, y + rows))][..., ::2, ::2]
                    current[(*at, slice(y // 2, y // 2 + block.shape[-2]))] = block
            previous, level = current, level + 1
        root.attrs.update(self._metadata(levels=level))

    def _metadata(self, levels: int) -> dict:
        axes = list(self.placement.axes)
        datasets = [
            {"path": str(k), "coordinateTransformations": self.placement.transforms(k)}
            for k in range(levels)
        ]
        return {
            "multiscales": [
                {"version": "0.4", "name": "U-Net classes", "axes": axes, "datasets": datasets}
            ],
            "napari_unet": {"class_names": self.class_names, "ids": "1 = background, 2.. classes"},
        }


def predict_chunk(job: Job, chunk: Chunk) -> None:
    """Predict one output chunk (with its margin of context) and write it."""
    zarr = _zarr()
    segmenter = _model(job)
    source = zarr.open(job.source, mode="r")
    array = source[job.array_path] if job.array_path else source
    spatial = [i for i in range(array.ndim) if i != job.channel_axis]
    height, width = (array.shape[i] for i in spatial[-2:])
    multiple = segmenter.config.multiple
    y0 = max(chunk.y0 - job.margin, 0) // multiple * multiple
    x0 = max(chunk.x0 - job.margin, 0) // multiple * multiple
    y1, x1 = min(chunk.y1 + job.margin, height), min(chunk.x1 + job.margin, width)
    index: list = [slice(None)] * array.ndim
    if len(spatial) == 3:
        index[spatial[0]] = chunk.z
    index[spatial[-2]], index[spatial[-1]] = slice(y0, y1), slice(x0, x1)
    region = np.asarray(array[tuple(index)])
    channel_axis = job.channel_axis
    if channel_axis is not None and len(spatial) == 3 and spatial[0] < channel_axis:
        channel_axis -= 1
    sizes = {}
    if resolve_device(job.device).type == "cuda":  # no memory probe per chunk: one tile,
        largest = math.isqrt(MAX_BATCH_PIXELS) // multiple * multiple  # or as large as allowed
        side = max(min(max(y1 - y0, x1 - x0), largest), 2 * context(multiple) + multiple)
        sizes = {"tile_size": -(-side // multiple) * multiple, "batch_size": 1}
    wanted = job.instances_of is not None
    result = Predictor(
        segmenter,
        region,
        channel_axis=channel_axis,
        device=job.device,
        probabilities=wanted,
        **sizes,
    )
    for _ in result.run():
        pass
    centre = (slice(chunk.y0 - y0, chunk.y1 - y0), slice(chunk.x0 - x0, chunk.x1 - x0))
    labels = result.outputs().labels[centre]
    output = zarr.open_group(job.target, mode="r+")
    if output["0"].ndim == 2:
        output["0"][chunk.y0 : chunk.y1, chunk.x0 : chunk.x1] = labels
    else:
        output["0"][chunk.z, chunk.y0 : chunk.y1, chunk.x0 : chunk.x1] = labels
    if wanted:
        probability = result.outputs().probabilities[job.instances_of - 1][centre]
        output[PROBABILITY][chunk.z, chunk.y0 : chunk.y1, chunk.x0 : chunk.x1] = probability


def _model(job: Job) -> Segmenter:
    """The job's model with the volume's normalisation, loaded once per process (by the
    fingerprint of its bytes); each volume keeps its own normalisation."""
    if job.fingerprint not in _MODELS:
        _MODELS.clear()
        _MODELS[job.fingerprint] = load_model_bytes(job.model)
    return dataclasses.replace(
        _MODELS[job.fingerprint], normalization=Normalization(**job.normalization)
    )


def cluster_client(workers: int | None = None, scheduler: str | None = None):
    """A dask.distributed client: of the scheduler at ``scheduler``, or of a local cluster of
    ``workers`` single-threaded processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise UNetError(
            "running on a cluster needs dask.distributed: pip install distributed"
        ) from None
    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except OSError as error:
            raise UNetError(f"cannot reach the dask scheduler at {scheduler}: {error}") from None
    workers = WORKERS.check(workers)
    cluster = LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,  # an interrupt's cancelled tasks are not news
    )
    return Client(cluster)


def metadata(path: str | Path) -> dict:
    """The OME-Zarr attributes of a written output."""
    return json.loads((Path(path) / ".zattrs").read_text())
