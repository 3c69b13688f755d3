"""Overlap-tile prediction of 2D images and of every slice of a stack.

A background thread reads the next slices (numpy, dask or zarr input, one at a time) into
pinned memory while the device predicts. Slices are cut into tiles whose starts align with the
network's pooling grid (a slice that fits is one tile), predicted in batches sized for the
device, and only the centre of each tile is kept, so tiled and whole-image predictions agree.
Small integer types are normalised on the device (others by the reader thread, in float64
where float32 cannot hold them); softmax and argmax run on the device; only labels (and
probabilities where asked) come back, and are written slice by slice into numpy arrays or a
new zarr store.
"""

import copy
import os
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .annotations import MAX_CLASSES
from .checks import Bound, is_whole
from .device import (
    autocast,
    cudnn_benchmark,
    free_memory,
    is_out_of_memory,
    peak_memory,
    prepare,
    resolve_device,
)
from .errors import UNetError
from .images import Normalization, as_stack, check_channels, read_slice, spatial_shape
from .object_size import AUTO, SAMPLE, scale_from
from .objects import ObjectSettings, find_objects
from .resizing import SCALE, resize, scaled_shape
from .segmenter import Segmenter
from .tiling import balanced_batch, batch_for_memory, context, tile_for_memory, tiles_2d
from .uncertainty import margin_uncertainty
from .volume_objects import Z_SPACING, find_volume_objects

READER_THREAD = "napari-unet-loop slice reader"
CPU_TILE, CPU_BATCH = 512, 1
GPU_TILE, GPU_BATCH = 1024, 8
MEMORY_FRACTION = 0.5
"""The share of the free GPU memory that one batch may use."""
MAX_BATCH_PIXELS = 2**23
PREFETCH_BYTES = 2**28
"""At most this many bytes of slices are read ahead (but at least one slice)."""
TILE_SIZE = Bound("tile size", int, 16, 16384, optional=True)
BATCH_SIZE = Bound("batch size", int, 1, 1024, optional=True)
INSTANCES_CLASS = Bound("class id of the instances", int, 2, MAX_CLASSES, optional=True)
RAW_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.int16, np.uint16, np.bool_)}
"""Integer types that travel to the device as they are; uint16 travels as int16."""


@dataclass
class PredictProgress:
    """One slice predicted."""

    done: int
    total: int
    index: int
    elapsed: float

    @property
    def fraction(self) -> float:
        return self.done / self.total


@dataclass
class Prediction:
    """Outputs, in the input's spatial shape: ``labels`` holds annotation ids (1 = background),
    ``probabilities`` one array per class id (index 0 = background), ``instances`` object ids,
    ``uncertainty`` how unsure the model is (0..1, see :mod:`.uncertainty`); ``scale`` the
    factor the slices were predicted at, ``object_diameter`` the object size measured to
    choose it (None when not measured)."""

    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    uncertainty: np.ndarray | None = None
    instances: np.ndarray | None = None
    complete: bool = False
    scale: float = 1.0
    object_diameter: float | None = None


class Predictor:
    """Predicts ``image``: ``run()`` yields after each slice and returns the outputs.

    ``tile_size`` and ``batch_size`` default to what the device holds (on a GPU: whole
    slices when they fit, batches sized from the free memory); ``store`` is a new zarr folder.
    A stack is a series of unrelated slices (objects cut slice by slice) unless ``volume``:
    then objects continue through z and are cut in 3D once every slice is predicted, a z step
    counting ``z_spacing`` pixels (z step / pixel size). ``scale`` rescales each slice by
    that factor before it is predicted, "auto" by the factor :func:`measure_scale` finds (1
    for models without an object size); outputs come back at the slice's own size.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        image,
        *,
        channel_axis: int | None = None,
        labels: bool = True,
        probabilities: bool = False,
        probability_dtype: str = "float32",
        instances_of: int | None = None,
        uncertainty: bool = False,
        objects: ObjectSettings | None = None,
        tile_size: int | None = None,
        batch_size: int | None = None,
        device: str = "auto",
        store: str | Path | None = None,
        volume: bool = False,
        z_spacing: float = 1.0,
        scale: float | str = 1.0,
    ):
        if not isinstance(segmenter, Segmenter):
            raise UNetError(f"prediction needs a model, not {type(segmenter).__name__}")
        if objects is not None and not isinstance(objects, ObjectSettings):
            raise UNetError(f"objects must be ObjectSettings, not {type(objects).__name__}")
        self.segmenter = segmenter
        self.stack = as_stack(image, channel_axis)
        check_channels(self.stack, segmenter.in_channels)
        if not (labels or probabilities or uncertainty or instances_of is not None):
            raise UNetError(
                "choose at least one output: labels, probabilities, uncertainty or instances"
            )
        self.instances_of = _check_class(instances_of, segmenter.n_classes)
        probability_dtype = _check_probability_dtype(probability_dtype)
        self._probability_dtype = getattr(torch, probability_dtype.name)
        self.device = resolve_device(device)
        self.multiple = segmenter.config.multiple
        self.margin = context(self.multiple)
        self.tile_size = _check_tile_size(tile_size, self.multiple, self.margin)
        self.batch_size = BATCH_SIZE.check(batch_size)
        self._auto = (tile_size is None, batch_size is None)
        if self.device.type == "cpu":
            self.tile_size = self.tile_size or CPU_TILE
            self.batch_size = self.batch_size or CPU_BATCH
        elif self.device.type != "cuda":
            self.tile_size = self.tile_size or GPU_TILE
            self.batch_size = self.batch_size or GPU_BATCH
        self.objects = objects or ObjectSettings()
        self._next_instance = 0
        self._flat = len(spatial_shape(image, channel_axis)) == 2
        self.z_spacing = Z_SPACING.check(z_spacing)
        self.scale = scale if isinstance(scale, str) and scale == AUTO else SCALE.check(scale)
        self.volume = bool(volume)
        if self.volume and self._flat:
            raise UNetError(
                "a 2D image is not a volume: predict it without the volume option, or give a "
                "(Z, Y, X) stack"
            )
        self._class_volume: tuple[np.ndarray, np.ndarray] | None = None
        self._make = _zarr_maker(_new_store(store)) if store is not None else _numpy_maker
        self._wanted = (labels, probabilities, probability_dtype, uncertainty)
        self.result: Prediction | None = None
        self._stop = False

    def stop(self) -> None:
        """Stop after the current batch; ``run`` returns the slices done so far."""
        self._stop = True

    def run(self) -> Generator[PredictProgress, None, Prediction]:
        """Predict slice by slice, yielding after each; closing the generator stops it."""
        start = time.perf_counter()
        self.allocate()
        if self.scale == AUTO:
            yield from self._at_measured_scale(start)
        else:
            yield from self._predict_all(start)
        self.result.scale = self.scale
        return self.outputs()

    def _at_measured_scale(self, start: float) -> Iterator[PredictProgress]:
        """Predict at the factor :func:`measure_scale` finds. A stack that is its own sample
        (at most three slices of at most SAMPLE² pixels) is measured on this prediction at
        scale 1, which is kept when no rescaling is due: no second pass."""
        target = self.segmenter.object_diameter
        slices, height, width = self.stack.shape[:3]
        whole = slices <= 3 and max(height, width) <= SAMPLE and self.result.labels is not None
        if target is None or not whole:
            device = self.device.type
            self.scale, diameter = measure_scale(self.segmenter, self.stack, device=device)
            self.result.object_diameter = diameter
            yield from self._predict_all(start)
            return
        self.scale = 1.0
        yield from self._predict_all(start)
        factor, self.result.object_diameter = scale_from(self.result.labels, target)
        if factor != 1 and self.result.complete:
            self.scale, self._next_instance = factor, 0
            yield from self._predict_all(start)

    def _predict_all(self, start: float) -> Iterator[PredictProgress]:
        """Predict every slice at ``self.scale`` into the outputs, yielding after each."""
        normalization = self.segmenter.normalization.for_image(self.stack)
        net = _inference_net(self.segmenter.net, self.device)
        total, height, width, channels = self.stack.shape
        scaled = scaled_shape((height, width), self.scale)
        padded = (_round_up(scaled[0], self.multiple), _round_up(scaled[1], self.multiple))
        if self.device.type == "cuda":
            self._fit_to_device(net, padded, channels)
        tile_shape, tiles = tiles_2d(*padded, self.tile_size, self.margin, self.multiple)
        slice_bytes = height * width * channels * 4
        ahead = max(1, min(self.batch_size // len(tiles) + 2, PREFETCH_BYTES // slice_bytes))
        outputs: dict[int, _SliceOutput] = {}
        in_flight: list[_InFlight] = []
        done = 0
        dtype = np.dtype(self.stack.dtype)
        raw = dtype in RAW_DTYPES  # normalised on the device; others by the reader
        pin = self.device.type == "cuda"
        on_host = None if raw else normalization
        with (
            _SliceReader(self.stack, self.multiple, pin, ahead, on_host) as reader,
            cudnn_benchmark(self.device),
        ):
            normalize = _Scale(normalization if raw else None, self.device, dtype == np.uint16)
            for batch in self._batches(reader, normalize, tiles, tile_shape, outputs):
                launched = self._launch(net, batch)
                for z in self._finish(in_flight, outputs):
                    done += 1
                    yield PredictProgress(done, total, z, time.perf_counter() - start)
                in_flight = launched
            for z in self._finish(in_flight, outputs):
                done += 1
                yield PredictProgress(done, total, z, time.perf_counter() - start)
            if reader.error is not None:
                raise reader.error
        self.result.complete = done == total
        if self._class_volume is not None:
            probability, mask = self._class_volume
            self._class_volume = None
            objects = find_volume_objects(probability, mask, self.objects, self.z_spacing)
            del probability, mask
            self.result.instances[...] = objects

    def _fit_to_device(self, net, padded: tuple[int, int], channels: int) -> None:
        """Tile and batch sizes from the free GPU memory and a probe of the network's needs."""
        auto_tile, auto_batch = self._auto
        if not (auto_tile or auto_batch):
            return
        free = free_memory(self.device)
        side_y, side_x = min(padded[0], 512), min(padded[1], 512)
        probe = torch.zeros((1, channels, side_y, side_x), device=self.device).contiguous(
            memory_format=torch.channels_last
        )
        used = peak_memory(self.device, lambda: self._compute(net, probe))
        if used is None:
            self.tile_size = self.tile_size or 2 * self.margin + self.multiple
            self.batch_size = self.batch_size or 1
            return
        bytes_per_pixel = 1.25 * used / (side_y * side_x) + 4 * channels
        budget = MEMORY_FRACTION * free
        tile_budget = min(budget, MAX_BATCH_PIXELS * bytes_per_pixel)  # activations < 2**31 values
        self.tile_size = self.tile_size or tile_for_memory(
            *padded, bytes_per_pixel, tile_budget, self.multiple, 2 * self.margin + self.multiple
        )
        if auto_batch:
            (tile_y, tile_x), tiles = tiles_2d(*padded, self.tile_size, self.margin, self.multiple)
            batch = batch_for_memory(tile_y * tile_x, bytes_per_pixel, budget, MAX_BATCH_PIXELS)
            self.batch_size = balanced_batch(len(tiles) * self.stack.shape[0], batch)

    def _batches(self, reader, normalize, tiles, tile_shape, outputs) -> Iterator[list["_Tile"]]:
        """Batches of tiles, cut from the slices (normalised and rescaled on the device) as the
        reader delivers them."""
        height, width = self.stack.shape[1:3]
        scaled = scaled_shape((height, width), self.scale)
        tile_y, tile_x = tile_shape
        pending: list[_Tile] = []
        for z, raw in reader:
            if self._stop:
                return
            data = normalize(raw)
            if self.scale != 1:
                data = _pad_tensor(resize(data[:, :height, :width], scaled), self.multiple)
            outputs[z] = _SliceOutput(len(tiles), scaled, tuple(data.shape[1:]))
            for y, x, keep_y, keep_x in tiles:
                pending.append(
                    _Tile(z, data[:, y : y + tile_y, x : x + tile_x], y, x, keep_y, keep_x)
                )
            while len(pending) >= self.batch_size and not self._stop:
                batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                yield batch
        if pending and not self._stop:
            yield pending

    def _launch(self, net, tiles: list["_Tile"]) -> list["_InFlight"]:
        """Start predicting ``tiles``; on out-of-memory, in smaller batches."""
        launched, done = [], 0
        while done < len(tiles):
            chunk = tiles[done : done + self.batch_size]
            try:
                batch = torch.stack([t.data for t in chunk])
                outputs = self._compute(net, batch.contiguous(memory_format=torch.channels_last))
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                outputs = None  # out of the handler, the traceback frees the batch's memory
            if outputs is None:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(chunk) == 1:
                    raise UNetError(
                        "out of memory predicting a single tile: choose a smaller tile (or zarr "
                        "chunk) size, or predict on the CPU"
                    ) from None
                self.batch_size = len(chunk) // 2
                continue
            launched.append(_InFlight.start(chunk, outputs, self.device))
            done += len(chunk)
        return launched

    def _compute(self, net, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the outputs need, on the device (the logits of a rescaled slice, whose outputs
        are made once it is back to its own size)."""
        with torch.inference_mode():
            with autocast(self.device):
                logits = net(batch)
            if self.scale != 1:
                return {"logits": logits.float()}
            return self._from_logits(logits.float())

    def _from_logits(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Labels, probabilities, uncertainty and the objects' class, as far as the outputs
        need them, from (N, K, Y, X) logits."""
        r = self.result
        outputs = {}
        with torch.inference_mode():
            if r.labels is not None or r.instances is not None:
                dtype = torch.uint8 if self.segmenter.n_classes < 255 else torch.int32
                outputs["labels"] = (logits.argmax(1) + 1).to(dtype)
            if r.probabilities is not None or r.instances is not None or r.uncertainty is not None:
                probabilities = torch.softmax(logits, dim=1)
                if r.uncertainty is not None:
                    outputs["uncertainty"] = margin_uncertainty(probabilities, axis=1)
                if r.probabilities is not None:
                    outputs["probabilities"] = probabilities.to(self._probability_dtype)
                if r.instances is not None:
                    outputs["class"] = probabilities[:, self.instances_of - 1]
        return outputs

    def _finish(self, flights: list["_InFlight"], outputs: dict) -> Iterator[int]:
        """Wait for ``flights``, keep their tiles' centres, write each slice completed."""
        for flight in flights:
            arrays = flight.wait()
            for i, tile in enumerate(flight.tiles):
                out = outputs[tile.z]
                out.paste(tile, {name: array[i] for name, array in arrays.items()})
                if out.remaining == 0:
                    del outputs[tile.z]
                    self._write(tile.z, out.cropped())
                    yield tile.z

    def _write(self, z: int, parts: dict[str, np.ndarray]) -> None:
        """Store slice ``z``'s outputs; objects get ids after those of the slices before."""
        r = self.result
        if "logits" in parts:
            logits = resize(torch.from_numpy(parts["logits"]), self.stack.shape[1:3])
            parts = {name: t[0].numpy() for name, t in self._from_logits(logits[None]).items()}
        if r.labels is not None:
            r.labels[z] = parts["labels"]
        if r.probabilities is not None:
            r.probabilities[:, z] = parts["probabilities"]
        if r.uncertainty is not None:
            r.uncertainty[z] = parts["uncertainty"]
        if r.instances is not None and self.volume:
            self._keep_for_volume_objects(z, parts)
        elif r.instances is not None:
            k = self.instances_of
            objects = find_objects(parts["class"], parts["labels"] == k, self.objects)
            objects[objects > 0] += self._next_instance
            self._next_instance = max(self._next_instance, int(objects.max()))
            r.instances[z] = objects

    def _keep_for_volume_objects(self, z: int, parts: dict[str, np.ndarray]) -> None:
        """Keep slice ``z``'s class probability and mask until the volume is done."""
        if self._class_volume is None:
            shape = (self.stack.shape[0], *self.stack.shape[1:3])
            self._class_volume = (np.zeros(shape, np.float32), np.zeros(shape, bool))
        probability, mask = self._class_volume
        probability[z] = parts["class"]
        mask[z] = parts["labels"] == self.instances_of

    def allocate(self) -> Prediction:
        """Create the output arrays (zeros; once), which :meth:`run` fills slice by slice, and
        return them as :meth:`outputs` does: a caller may show them while they fill."""
        if self.result is None:
            labels, probabilities, probability_dtype, uncertainty = self._wanted
            stack_shape = (self.stack.shape[0], *self.stack.shape[1:3])
            n = self.segmenter.n_classes
            make = self._make
            self.result = Prediction(
                labels=make("labels", stack_shape, np.uint8 if n < 255 else np.uint16)
                if labels
                else None,
                probabilities=make("probabilities", (n, *stack_shape), probability_dtype)
                if probabilities
                else None,
                instances=make("instances", stack_shape, np.uint32) if self.instances_of else None,
                uncertainty=make("uncertainty", stack_shape, np.float32) if uncertainty else None,
            )
        return self.outputs()

    def outputs(self) -> Prediction:
        """The results in the input's spatial shape (2D inputs lose the slice axis); call
        :meth:`allocate` or :meth:`run` first."""
        r = self.result
        if r is None:
            raise RuntimeError("call allocate() or run() before outputs()")
        if not self._flat:
            return r
        return replace(
            r,
            labels=None if r.labels is None else r.labels[0],
            probabilities=None if r.probabilities is None else r.probabilities[:, 0],
            instances=None if r.instances is None else r.instances[0],
            uncertainty=None if r.uncertainty is None else r.uncertainty[0],
        )


def predict(segmenter: Segmenter, image, **options) -> Prediction:
    """Predict ``image`` to the end (no progress events); see :class:`Predictor` for options."""
    predictor = Predictor(segmenter, image, **options)
    for _ in predictor.run():
        pass
    return predictor.outputs()


def measure_scale(
    segmenter: Segmenter, stack, slices: list[int] | None = None, device="auto"
) -> tuple[float, float | None]:
    """``(factor, diameter)`` for a (Z, Y, X, C) ``stack``: the factor to predict it at (see
    :mod:`.object_size`) and the median width of the objects of class 2 measured, None when
    not measured: models without an ``object_diameter`` are not (factor 1). The width is
    measured on up to three of ``slices`` (default: all), each cut to its centre SAMPLE x
    SAMPLE pixels."""
    target = segmenter.object_diameter
    if target is None:
        return 1.0, None
    slices = list(range(stack.shape[0])) if slices is None else list(slices)
    picked = [slices[i] for i in np.linspace(0, len(slices) - 1, min(3, len(slices))).astype(int)]
    height, width = stack.shape[1:3]
    y0, x0 = max(0, (height - SAMPLE) // 2), max(0, (width - SAMPLE) // 2)
    crops = np.stack([np.asarray(stack[z, y0 : y0 + SAMPLE, x0 : x0 + SAMPLE]) for z in picked])
    fitted = replace(segmenter.normalization.for_image(stack), mode="fixed")
    fixed = replace(segmenter, normalization=fitted)  # the stack's percentiles, not the crops'
    found = predict(fixed, crops, channel_axis=3, device=device)
    return scale_from(found.labels, target)


@dataclass
class _Tile:
    """A tile of slice ``z`` (C, Y, X) on the device, from (y, x), and the part of it kept."""

    z: int
    data: torch.Tensor
    y: int
    x: int
    keep_y: tuple[int, int]
    keep_x: tuple[int, int]


@dataclass
class _InFlight:
    """A batch whose outputs are being copied back from the device."""

    tiles: list[_Tile]
    host: dict[str, torch.Tensor]
    event: torch.cuda.Event | None = None

    @classmethod
    def start(cls, tiles, outputs: dict[str, torch.Tensor], device) -> "_InFlight":
        if device.type != "cuda":
            return cls(tiles, {name: t.cpu() for name, t in outputs.items()})
        host = {name: t.to("cpu", non_blocking=True) for name, t in outputs.items()}
        event = torch.cuda.Event()
        event.record()
        return cls(tiles, host, event)

    def wait(self) -> dict[str, np.ndarray]:
        if self.event is not None:
            self.event.synchronize()
        return {name: t.numpy() for name, t in self.host.items()}


@dataclass
class _SliceOutput:
    """The outputs of one slice, assembled from the kept centres of its tiles."""

    remaining: int
    shape: tuple[int, int]
    padded: tuple[int, int]
    parts: dict[str, np.ndarray] = field(default_factory=dict)

    def paste(self, tile: _Tile, arrays: dict[str, np.ndarray]) -> None:
        (y0, y1), (x0, x1) = tile.keep_y, tile.keep_x
        whole = (y1 - y0, x1 - x0) == self.padded and self.remaining == 1
        for name, array in arrays.items():
            if whole:
                self.parts[name] = array
                continue
            if name not in self.parts:
                self.parts[name] = np.empty((*array.shape[:-2], *self.padded), array.dtype)
            self.parts[name][..., y0:y1, x0:x1] = array[
                ..., y0 - tile.y : y1 - tile.y, x0 - tile.x : x1 - tile.x
            ]
        self.remaining -= 1

    def cropped(self) -> dict[str, np.ndarray]:
        height, width = self.shape
        return {name: part[..., :height, :width] for name, part in self.parts.items()}


class _Scale:
    """Percentile normalisation on the device: a raw slice in, float32 (C, Y, X) out (slices
    normalised by the reader only move to the device: ``normalization`` None)."""

    def __init__(self, normalization: Normalization | None, device: torch.device, uint16: bool):
        self.device, self.normalization, self.uint16 = device, normalization, uint16
        if normalization is not None:  # on the device once, not a copy per slice
            self.coefficients = tuple(
                torch.as_tensor(c, dtype=torch.float32, device=device)
                for c in normalization.coefficients(3, channel_axis=0)
            )

    def __call__(self, raw: torch.Tensor) -> torch.Tensor:
        data = raw.to(self.device, non_blocking=self.device.type == "cuda")
        if self.normalization is None:
            return data
        if self.uint16:
            data = data.to(torch.int32).bitwise_and_(0xFFFF)
        return self.normalization.apply(data.float(), coefficients=self.coefficients)


class _SliceReader:
    """Reads, checks, normalises (all but small integers) and pads the slices in a background
    thread, a bounded number ahead.

    Iterating yields ``(z, tensor)`` and ends early at an error while reading, kept in
    ``error`` for the consumer to raise once the slices before it are done. Leaving the
    ``with`` block (at the end, on an error, or when the consumer stops) ends the thread.
    """

    def __init__(self, stack, multiple: int, pin: bool, ahead: int, normalization=None):
        self.stack, self.multiple, self.pin = stack, multiple, pin
        self.normalization = normalization
        self._queue: queue.Queue = queue.Queue(maxsize=ahead)
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._read_all, name=READER_THREAD, daemon=True)
        self.error: Exception | None = None

    def __enter__(self) -> "_SliceReader":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._halt.set()
        self._thread.join()

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                self.error = item
                return
            yield item

    def _read_all(self) -> None:
        try:
            for z in range(self.stack.shape[0]):
                if not self._put((z, self._read(z))):
                    return
        except Exception as error:
            self._put(error)
            return
        self._put(None)

    def _put(self, item) -> bool:
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self, z: int) -> torch.Tensor:
        """Slice ``z`` as a (C, Y, X) tensor padded to the pooling grid: small integers as
        they are (uint16 seen as int16), anything else checked and normalised, as float32."""
        if self.normalization is None:
            data = np.asarray(self.stack[z])
        else:
            data = read_slice(self.stack, z, self.normalization)
        data = _pad_to_multiple(data, self.multiple)
        if data.dtype == np.uint16:
            data = data.view(np.int16)
        tensor = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))
        return tensor.pin_memory() if self.pin else tensor


def _inference_net(net: nn.Module, device: torch.device) -> nn.Module:
    """A copy of ``net`` for prediction: eval mode, each batch norm folded into the convolution
    before it (fewer passes over memory, the same function), on ``device``, channels-last.
    The segmenter's own network is left as it is (it may be trained again)."""
    net = copy.deepcopy(net).eval()
    for block in net.modules():
        if isinstance(block, nn.Sequential):
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()
    return prepare(net, device)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _pad_tensor(data: torch.Tensor, multiple: int) -> torch.Tensor:
    """A (C, Y, X) tensor padded at the bottom and right to multiples of ``multiple``."""
    pad_y, pad_x = -data.shape[1] % multiple, -data.shape[2] % multiple
    if not pad_y and not pad_x:
        return data
    mode = "reflect" if pad_y < data.shape[1] and pad_x < data.shape[2] else "replicate"
    return F.pad(data[None], (0, pad_x, 0, pad_y), mode=mode)[0]


def _pad_to_multiple(data: np.ndarray, multiple: int) -> np.ndarray:
    height, width = data.shape[:2]
    pad_y, pad_x = -height % multiple, -width % multiple
    if not pad_y and not pad_x:
        return data
    mode = "reflect" if pad_y < height and pad_x < width else "symmetric"
    return np.pad(data, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)


def _check_tile_size(value, multiple: int, margin: int) -> int | None:
    if value is None:
        return None
    smallest = 2 * margin + multiple
    if is_whole(value) and (value % multiple or value < smallest):
        raise UNetError(
            f"the tile size must be a multiple of {multiple} and at least {smallest} "
            f"pixels for this model, not {value}"
        )
    return TILE_SIZE.check(value)


def _check_class(value, n_classes: int) -> int | None:
    return replace(INSTANCES_CLASS, high=n_classes).check(value)


def _check_probability_dtype(value) -> np.dtype:
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if value is None or dtype not in (np.float32, np.float16):
        raise UNetError(f"probabilities are float32 or float16, not {value!r}")
    return dtype


def _new_store(store) -> Path:
    """``store`` as a path where nothing exists yet: predictions never replace data."""
    if not isinstance(store, str | os.PathLike):
        raise UNetError(f"store must be a folder path, not {type(store).__name__}")
    root = Path(store)
    if root.exists():
        raise UNetError(
            f"{root} already exists: predictions are written to a new zarr folder and never "
            "replace what is there; choose another path"
        )
    folder = root.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UNetError(f"cannot write predictions to {root}: {folder} is not a writable folder")
    return root


def _numpy_maker(name, shape, dtype):
    return np.zeros(shape, dtype=dtype)


def _zarr_maker(root: Path):
    import zarr

    def make(name, shape, dtype):
        chunks = (*(1,) * (len(shape) - 2), *shape[-2:])
        try:
            return zarr.open_array(root / name, mode="w-", shape=shape, dtype=dtype, chunks=chunks)
        except OSError as error:
            raise UNetError(
                f"cannot write predictions to {root}: {error.strerror or error}"
            ) from None

    return make
