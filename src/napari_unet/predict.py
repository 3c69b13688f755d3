"""Overlap-tile prediction of 2D images and of every slice of a stack.

Slices are read one at a time (numpy, dask or zarr input), cut into tiles whose starts align
with the network's pooling grid, predicted in batches, and only the centre of each tile is
kept, so tiled and whole-image predictions agree. Results are written slice by slice into
numpy arrays or a zarr store.
"""

import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .device import autocast, is_out_of_memory, prepare, resolve_device
from .errors import UNetError
from .images import as_stack, read_slice, spatial_shape
from .objects import ObjectSettings, find_objects
from .segmenter import Segmenter
from .tiling import tiles_2d


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
    ``probabilities`` one array per class id (index 0 = background), ``instances`` object ids."""

    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    instances: np.ndarray | None = None
    complete: bool = False


class Predictor:
    """Predicts ``image``: ``run()`` yields after each slice and returns the outputs."""

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
        objects: ObjectSettings | None = None,
        tile_size: int | None = None,
        batch_size: int | None = None,
        device: str = "auto",
        store: str | Path | None = None,
    ):
        self.segmenter = segmenter
        self.stack = as_stack(image, channel_axis)
        if self.stack.shape[-1] != segmenter.in_channels:
            raise UNetError(
                f"the model expects {segmenter.in_channels} channel(s) but the image has "
                f"{self.stack.shape[-1]}"
            )
        if instances_of is not None and not 2 <= instances_of <= segmenter.n_classes:
            raise UNetError(
                f"instances need a class id 2..{segmenter.n_classes}, not {instances_of}"
            )
        if probability_dtype not in ("float32", "float16"):
            raise UNetError("probabilities are float32 or float16")
        self.device = resolve_device(device)
        on_gpu = self.device.type != "cpu"
        self.tile_size = tile_size or (1024 if on_gpu else 512)
        self.batch_size = batch_size or (8 if on_gpu else 1)
        self.multiple = segmenter.config.multiple
        self.margin = 4 * self.multiple
        if self.tile_size % self.multiple or self.tile_size < 2 * self.margin + self.multiple:
            raise UNetError(
                f"tile size must be a multiple of {self.multiple} and at least "
                f"{2 * self.margin + self.multiple}"
            )
        self.instances_of = instances_of
        self.objects = objects or ObjectSettings()
        self._next_instance = 0
        self._flat = len(spatial_shape(image, channel_axis)) == 2
        self.result = self._allocate(labels, probabilities, probability_dtype, store)
        self._stop = False

    def stop(self) -> None:
        """Stop after the current batch; ``run`` returns the slices done so far."""
        self._stop = True

    def run(self) -> Generator[PredictProgress, None, Prediction]:
        start = time.perf_counter()
        normalization = self.segmenter.normalization.for_image(self.stack)
        net = prepare(self.segmenter.net, self.device).eval()
        total, done = self.stack.shape[0], 0
        pending: list[tuple[int, torch.Tensor, tuple]] = []
        slices: dict[int, list] = {}
        for z in range(total):
            if self._stop:
                break
            data = normalization.apply(read_slice(self.stack, z))
            padded = _pad_to_multiple(data, self.multiple)
            (ty, tx), tiles = tiles_2d(
                *padded.shape[:2], self.tile_size, self.margin, self.multiple
            )
            tensor = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))
            out = np.empty((self.segmenter.n_classes, *padded.shape[:2]), np.float32)
            slices[z] = [out, len(tiles), data.shape[:2]]
            for y, x, keep_y, keep_x in tiles:
                pending.append((z, tensor[:, y : y + ty, x : x + tx], (y, x, keep_y, keep_x)))
            last = z == total - 1
            while len(pending) >= self.batch_size or (last and pending):
                batch, pending = pending[: self.batch_size], pending[self.batch_size :]
                self._predict_batch(net, batch, slices)
                for finished in [i for i, s in slices.items() if s[1] == 0]:
                    out, _, (height, width) = slices.pop(finished)
                    self._write(finished, out[:, :height, :width])
                    done += 1
                    yield PredictProgress(done, total, finished, time.perf_counter() - start)
                if self._stop:
                    break
        self.segmenter.net.to("cpu", memory_format=torch.contiguous_format)
        self.result.complete = done == total and not slices
        return self.outputs()

    def _predict_batch(self, net, batch, slices) -> None:
        tiles = torch.stack([tile for _, tile, _ in batch])
        probabilities = self._forward(net, tiles)
        for (z, _, (y, x, (y0, y1), (x0, x1))), p in zip(batch, probabilities, strict=True):
            out = slices[z][0]
            out[:, y0:y1, x0:x1] = p[:, y0 - y : y1 - y, x0 - x : x1 - x]
            slices[z][1] -= 1

    def _forward(self, net, tiles: torch.Tensor) -> np.ndarray:
        """Class probabilities of a batch of tiles; on out-of-memory, smaller batches."""
        parts, done = [], 0
        while done < len(tiles):
            chunk = tiles[done : done + self.batch_size]
            try:
                with torch.inference_mode(), autocast(self.device):
                    logits = net(chunk.to(self.device, memory_format=torch.channels_last))
                parts.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(chunk) == 1:
                    raise UNetError(
                        "out of memory predicting a single tile: choose a smaller tile size "
                        "or predict on the CPU"
                    ) from None
                self.batch_size = len(chunk) // 2
                continue
            done += len(chunk)
        return np.concatenate(parts)

    def _write(self, z: int, probabilities: np.ndarray) -> None:
        r = self.result
        labels = (
            probabilities.argmax(0).astype(
                np.uint8 if self.segmenter.n_classes < 255 else np.uint16
            )
            + 1
        )
        if r.labels is not None:
            r.labels[z] = labels
        if r.probabilities is not None:
            r.probabilities[:, z] = probabilities
        if r.instances is not None:
            k = self.instances_of
            objects = find_objects(probabilities[k - 1], labels == k, self.objects)
            objects[objects > 0] += self._next_instance
            self._next_instance = max(self._next_instance, int(objects.max()))
            r.instances[z] = objects

    def _allocate(self, labels, probabilities, probability_dtype, store) -> Prediction:
        """Output arrays of shape (Z, Y, X), filled as slices are predicted."""
        stack_shape = (self.stack.shape[0], *self.stack.shape[1:3])
        n = self.segmenter.n_classes
        make = _zarr_maker(store) if store is not None else _numpy_maker
        label_dtype = np.uint8 if n < 255 else np.uint16
        result = Prediction(
            labels=make("labels", stack_shape, label_dtype) if labels else None,
            probabilities=make("probabilities", (n, *stack_shape), probability_dtype)
            if probabilities
            else None,
            instances=make("instances", stack_shape, np.uint32) if self.instances_of else None,
        )
        return result

    def outputs(self) -> Prediction:
        """The results in the input's spatial shape (2D inputs lose the slice axis)."""
        r = self.result
        if not self._flat:
            return r
        return Prediction(
            labels=None if r.labels is None else r.labels[0],
            probabilities=None if r.probabilities is None else r.probabilities[:, 0],
            instances=None if r.instances is None else r.instances[0],
            complete=r.complete,
        )


def predict(segmenter: Segmenter, image, **options) -> Prediction:
    """Predict ``image`` to the end (no progress events); see :class:`Predictor` for options."""
    predictor = Predictor(segmenter, image, **options)
    for _ in predictor.run():
        pass
    return predictor.outputs()


def _pad_to_multiple(data: np.ndarray, multiple: int) -> np.ndarray:
    height, width = data.shape[:2]
    pad_y, pad_x = -height % multiple, -width % multiple
    if not pad_y and not pad_x:
        return data
    mode = "reflect" if pad_y < height and pad_x < width else "symmetric"
    return np.pad(data, ((0, pad_y), (0, pad_x), (0, 0)), mode=mode)


def _numpy_maker(name, shape, dtype):
    return np.zeros(shape, dtype=dtype)


def _zarr_maker(store):
    import zarr

    root = Path(store)

    def make(name, shape, dtype):
        chunks = (*(1,) * (len(shape) - 2), *shape[-2:])
        return zarr.open_array(root / name, mode="w", shape=shape, dtype=dtype, chunks=chunks)

    return make
