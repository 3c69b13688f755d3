"""Images as stacks of 2D slices: axes, checks and percentile normalisation.

Every image is seen as a ``(slices, Y, X, channels)`` view of what the user holds (numpy, dask,
zarr): nothing is loaded until a slice is asked for.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .checks import Bound
from .errors import UNetError

MIN_SIDE = 8
MAX_SLICE_PIXELS = 2**28
CHANNEL_AXIS = Bound("channel axis", int, -4, 3, optional=True)
"""Images have at most four axes: a stack (Z, Y, X) and its channels."""


def as_stack(image, channel_axis: int | None = None):
    """View ``image`` as (slices, Y, X, C): 2D ``YX``, stacks ``ZYX``, an optional channel axis."""
    image = _array_like(image)
    shape = tuple(image.shape)
    channel_axis = check_channel_axis(channel_axis, len(shape))
    if 0 in shape:
        raise UNetError(f"the image is empty (shape {shape})")
    if not np.issubdtype(np.dtype(image.dtype), np.number) and image.dtype != bool:
        raise UNetError(f"image has data type {image.dtype}; a numeric image is needed")
    if np.issubdtype(np.dtype(image.dtype), np.complexfloating):
        raise UNetError("complex-valued images are not supported")
    if not isinstance(image, np.ndarray):
        import dask.array as da

        image = da.asarray(image)
    if channel_axis is not None:
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
        hint = (
            "; if an axis holds channels, give it as the channel axis"
            if channel_axis is None
            else ""
        )
        raise UNetError(
            f"image slices are {height}x{width} pixels; at least {MIN_SIDE}x{MIN_SIDE} are "
            f"needed{hint}"
        )
    if height * width > MAX_SLICE_PIXELS:
        raise UNetError(
            f"image slices are {height}x{width} pixels, too large for one slice; "
            "crop or split the image"
        )
    return image


def spatial_shape(image, channel_axis: int | None = None) -> tuple[int, ...]:
    """The image's shape without its channel axis."""
    shape = list(_array_like(image).shape)
    channel_axis = check_channel_axis(channel_axis, len(shape))
    if channel_axis is not None:
        del shape[channel_axis]
    return tuple(shape)


def check_channel_axis(channel_axis, ndim: int) -> int | None:
    """``channel_axis`` as an int that exists in an ``ndim``-D image (or None)."""
    channel_axis = CHANNEL_AXIS.check(channel_axis)
    if channel_axis is None:
        return None
    if not -ndim <= channel_axis < ndim:
        raise UNetError(f"channel axis {channel_axis} does not exist in a {ndim}D image")
    return channel_axis


def _array_like(image):
    """``image`` if it has a shape and a numpy data type (numpy, dask, zarr), else as a numpy
    array (a list, a torch tensor on the CPU)."""
    dtype = getattr(image, "dtype", None)
    if hasattr(image, "shape") and isinstance(dtype, np.dtype) and hasattr(image, "__getitem__"):
        return image
    try:
        return np.asarray(image)
    except (TypeError, ValueError, RuntimeError) as error:
        raise UNetError(
            f"the image must be an array, not {type(image).__name__}: {error}"
        ) from None


def check_channels(stack, expected: int) -> None:
    """Refuse a (Z, Y, X, C) ``stack`` whose channels are not the ``expected`` number."""
    if stack.shape[-1] != expected:
        raise UNetError(
            f"the model expects {expected} channel(s) but the image has {stack.shape[-1]}; "
            "check the channel axis"
        )


def guess_channel_axis(shape: tuple[int, ...]) -> int | None:
    """The channel axis of a plain array, as napari guesses RGB: a last axis of 3 or 4."""
    if len(shape) in (3, 4) and shape[-1] in (3, 4) and min(shape[-3:-1]) > 4:
        return len(shape) - 1
    return None


def guess_volume(axis_labels=None, scale=None) -> tuple[bool, float]:
    """Whether a stack is a volume (objects continue through its first axis) and its z spacing
    (z step / pixel size), guessed from napari's axis labels and scale of its last three
    spatial axes: "t"/"time" first means a series, "z" a volume, a z step unlike the pixel
    size a volume too; otherwise a series (objects per slice), with a z spacing of 1."""
    labels = [str(label).lower() for label in (axis_labels or ())][-3:]
    steps = [float(step) for step in (scale or ())][-3:]
    spacing = steps[0] / steps[-1] if len(steps) == 3 and steps[-1] else 1.0
    if not (math.isfinite(spacing) and spacing > 0):
        spacing = 1.0
    if len(labels) == 3 and labels[0] in ("t", "time"):
        return False, 1.0
    volume = (len(labels) == 3 and labels[0] == "z") or spacing != 1.0
    return volume, spacing if volume else 1.0


def fits_float32(dtype) -> bool:
    """Whether float32 holds every value of ``dtype`` (bool, 8/16-bit, float32) as it is."""
    dtype = np.dtype(dtype)
    return dtype.itemsize <= 2 or dtype == np.float32


def read_slice(stack, index: int, normalization: "Normalization") -> np.ndarray:
    """One (Y, X, C) slice, checked for NaN and infinity and normalised, as float32: in float64
    first for types float32 cannot hold (float64, 32/64-bit integers), whose range or
    precision a float32 copy would lose."""
    data = normalization.apply(_finite(stack[index], index))
    return data.astype(np.float32, copy=False)


def _finite(data, index: int) -> np.ndarray:
    """Slice ``index`` (or part of it) as float32, or float64 where float32 would not hold it,
    checked for NaN and infinity."""
    data = np.asarray(data)
    data = data.astype(np.float32 if fits_float32(data.dtype) else np.float64)
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

    def __post_init__(self):
        percentiles = (self.low_percentile, self.high_percentile)
        if not all(_finite_number(p) for p in percentiles) or not (
            0 <= self.low_percentile < self.high_percentile <= 100
        ):
            raise UNetError(
                f"normalisation percentiles must be numbers with 0 <= low < high <= 100, "
                f"not {self.low_percentile!r} and {self.high_percentile!r}"
            )
        if self.mode not in ("image", "fixed"):
            raise UNetError(f"normalisation mode must be 'image' or 'fixed', not {self.mode!r}")
        values = (self.low, self.high)
        if not all(isinstance(v, list | tuple | np.ndarray) for v in values) or not all(
            _finite_number(x) for v in values for x in v
        ):
            raise UNetError("normalisation low and high must be lists of finite numbers")
        if len(self.low) != len(self.high):
            raise UNetError("normalisation low and high must have one value per channel")

    def measure(self, stack) -> tuple[np.ndarray, np.ndarray]:
        """Percentiles of a stack per channel, from at most 16 slices, subsampled (in float64
        for types float32 cannot hold)."""
        count = stack.shape[0]
        picks = np.unique(np.linspace(0, count - 1, min(count, 16)).round().astype(int))
        step = max(1, int(np.sqrt(stack.shape[1] * stack.shape[2] / 2**20)))
        sample = np.stack([_finite(stack[int(i)][::step, ::step], int(i)) for i in picks])
        sample = sample.reshape(-1, sample.shape[-1])
        low, high = np.percentile(sample, [self.low_percentile, self.high_percentile], axis=0)
        if np.all(sample.max(axis=0) == sample.min(axis=0)):
            raise UNetError("the image is constant: there is nothing to segment")
        return low.astype(sample.dtype), high.astype(sample.dtype)

    def fitted(self, stack) -> "Normalization":
        """A copy holding the percentiles of ``stack``."""
        low, high = self.measure(stack)
        return Normalization(
            self.low_percentile, self.high_percentile, self.mode, low.tolist(), high.tolist()
        )

    def for_image(self, stack) -> "Normalization":
        """The normalisation to apply to ``stack``, following ``mode``."""
        return self if self.mode == "fixed" and self.low else self.fitted(stack)

    def spread(self) -> np.ndarray:
        """``high - low`` per channel (1e-6 where the percentiles coincide), in float64."""
        spread = np.asarray(self.high, dtype=np.float64) - np.asarray(self.low, dtype=np.float64)
        return np.where(spread > 0, spread, 1e-6)

    def coefficients(self, ndim: int, channel_axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """``(low, spread)`` in float64, shaped to broadcast over an ``ndim``-D array whose
        channels are on ``channel_axis``."""
        shape = [1] * ndim
        shape[channel_axis] = -1
        low = np.asarray(self.low, np.float64).reshape(shape)
        return low, self.spread().reshape(shape)

    def apply(self, data, channel_axis: int = -1, coefficients=None):
        """Normalise a float array or tensor in place, in its own precision (a tensor on its
        own device), and return it; ``channel_axis`` says where its channels are. A caller
        normalising many tensors passes the :meth:`coefficients` as tensors on their device,
        made once."""
        if coefficients is None:
            coefficients = self.coefficients(data.ndim, channel_axis)
        low, spread = coefficients
        if isinstance(data, np.ndarray):
            data -= low.astype(data.dtype)
            data /= spread.astype(data.dtype)
            return data
        if isinstance(low, np.ndarray):
            import torch

            low, spread = (
                torch.as_tensor(c, dtype=data.dtype, device=data.device) for c in (low, spread)
            )
        return data.sub_(low).div_(spread)

    def to_dict(self) -> dict:
        return {
            "low_percentile": self.low_percentile,
            "high_percentile": self.high_percentile,
            "mode": self.mode,
            "low": list(self.low),
            "high": list(self.high),
        }


def _finite_number(value) -> bool:
    return (
        isinstance(value, int | float | np.integer | np.floating)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
