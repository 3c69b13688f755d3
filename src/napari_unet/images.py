"""Images as stacks of 2D slices: axes, checks and percentile normalisation.

Every image is seen as a ``(slices, Y, X, channels)`` view of what the user holds (numpy, dask,
zarr): nothing is loaded until a slice is asked for.
"""

from dataclasses import dataclass, field

import numpy as np

from .errors import UNetError

MIN_SIDE = 8
MAX_SLICE_PIXELS = 2**28


def as_stack(image, channel_axis: int | None = None):
    """View ``image`` as (slices, Y, X, C): 2D ``YX``, stacks ``ZYX``, an optional channel axis."""
    shape = tuple(image.shape)
    if not np.issubdtype(np.dtype(image.dtype), np.number) and image.dtype != bool:
        raise UNetError(f"image has data type {image.dtype}; a numeric image is needed")
    if np.issubdtype(np.dtype(image.dtype), np.complexfloating):
        raise UNetError("complex-valued images are not supported")
    if not isinstance(image, np.ndarray):
        import dask.array as da

        image = da.asarray(image)
    if channel_axis is not None:
        if not -len(shape) <= channel_axis < len(shape):
            raise UNetError(f"channel axis {channel_axis} does not exist in a {len(shape)}D image")
        image = np.moveaxis(image, channel_axis, -1)
    else:
        if len(shape) == 4:
            raise UNetError(
                f"the image has 4 axes {shape}: say which one holds the channels "
                "(a 3D stack with channels, e.g. channel axis 1 for ZCYX)"
            )
        image = image[..., None]
    spatial = image.shape[:-1]
    if len(spatial) == 2:
        image = image[None]
    elif len(spatial) != 3:
        raise UNetError(
            f"image shape {shape} is not supported: use a 2D image (YX) or a stack (ZYX), "
            "each with at most one channel axis"
        )
    _, height, width, _ = image.shape
    if min(height, width) < MIN_SIDE:
        raise UNetError(
            f"image slices are {height}x{width} pixels; at least {MIN_SIDE}x{MIN_SIDE} are needed"
        )
    if height * width > MAX_SLICE_PIXELS:
        raise UNetError(
            f"image slices are {height}x{width} pixels, too large for one slice; "
            "crop or split the image"
        )
    return image


def spatial_shape(image, channel_axis: int | None = None) -> tuple[int, ...]:
    """The image's shape without its channel axis."""
    shape = list(image.shape)
    if channel_axis is not None:
        del shape[channel_axis]
    return tuple(shape)


def guess_channel_axis(shape: tuple[int, ...]) -> int | None:
    """The channel axis of a plain array, as napari guesses RGB: a last axis of 3 or 4."""
    if len(shape) in (3, 4) and shape[-1] in (3, 4) and min(shape[-3:-1]) > 4:
        return len(shape) - 1
    return None


def read_slice(stack, index: int) -> np.ndarray:
    """One (Y, X, C) slice as float32, checked for NaN and infinity."""
    data = np.asarray(stack[index], dtype=np.float32)
    if not np.isfinite(data).all():
        raise UNetError(f"slice {index} of the image contains NaN or infinite values")
    return data


@dataclass
class Normalization:
    """Percentile normalisation: ``(x - p_low) / (p_high - p_low)`` per channel.

    ``mode="image"`` recomputes the percentiles on each image predicted;
    ``mode="fixed"`` reuses ``low``/``high`` measured on the training image.
    """

    low_percentile: float = 1.0
    high_percentile: float = 99.8
    mode: str = "image"
    low: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)

    def measure(self, stack) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles of a stack per channel, from at most 16 slices, subsampled."""
        count = stack.shape[0]
        picks = np.unique(np.linspace(0, count - 1, min(count, 16)).round().astype(int))
        step = max(1, int(np.sqrt(stack.shape[1] * stack.shape[2] / 2**20)))
        sample = np.stack([read_slice(stack, int(i))[::step, ::step] for i in picks])
        sample = sample.reshape(-1, sample.shape[-1])
        low, high = np.percentile(sample, [self.low_percentile, self.high_percentile], axis=0)
        if np.all(sample.max(axis=0) == sample.min(axis=0)):
            raise UNetError("the image is constant: there is nothing to segment")
        return low.astype(np.float32), high.astype(np.float32)

    def fitted(self, stack) -> "Normalization":
        """A copy holding the percentiles of ``stack``."""
        low, high = self.measure(stack)
        return Normalization(
            self.low_percentile, self.high_percentile, self.mode, low.tolist(), high.tolist()
        )

    def for_image(self, stack) -> "Normalization":
        """The normalisation to apply to ``stack``, following ``mode``."""
        return self if self.mode == "fixed" and self.low else self.fitted(stack)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Normalise a (..., C) float32 array in place and return it."""
        low = np.asarray(self.low, dtype=np.float32)
        scale = np.maximum(np.asarray(self.high, dtype=np.float32) - low, 1e-6)
        data -= low
        data /= scale
        return data

    def to_dict(self) -> dict:
        return {
            "low_percentile": self.low_percentile,
            "high_percentile": self.high_percentile,
            "mode": self.mode,
            "low": list(self.low),
            "high": list(self.high),
        }
