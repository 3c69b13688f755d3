"""Images as stacks of slices: their axes and channel axis, the images refused with a clear
error, the data types read, and percentile normalisation."""

import numpy as np
import pytest
import torch

from napari_unet.engine.errors import UNetError
from napari_unet.engine.images import (
    Normalization,
    as_stack,
    check_channel_axis,
    check_channels,
    fits_float32,
    guess_channel_axis,
    guess_volume,
    read_slice,
    spatial_shape,
)
from napari_unet.engine.predict import predict
from napari_unet.engine.train import Trainer, TrainSettings

from helpers import SETTINGS, TINY, run_to_end, train


def test_constant_image(annotations):
    with pytest.raises(UNetError, match="constant"):
        train(np.full((512, 512), 7, np.uint16), annotations)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_and_infinite_values(image, annotations, bad):
    corrupt = image.astype(np.float32)
    corrupt[10, 10] = bad
    with pytest.raises(UNetError, match="NaN or infinite"):
        train(corrupt, annotations)


def test_tiny_and_huge_images():
    with pytest.raises(UNetError, match="at least 8x8"):
        as_stack(np.zeros((4, 100)))
    huge = np.broadcast_to(np.zeros(1, np.uint8), (20000, 20000))
    with pytest.raises(UNetError, match="too large"):
        as_stack(huge)


def test_rgb_images_train_with_a_channel_axis(image, annotations):
    rgb = np.stack([image, image // 2, image * 0], axis=-1)
    assert guess_channel_axis(rgb.shape) == 2
    segmenter = train(rgb, annotations, channel_axis=-1)
    assert segmenter.in_channels == 3
    assert predict(segmenter, rgb, channel_axis=2).labels.shape == image.shape
    with pytest.raises(UNetError, match="expects 3 channel.*has 1"):
        predict(segmenter, image)


def test_multichannel_stacks_need_their_channel_axis(image):
    stack = np.stack([np.stack([image, image])] * 2)  # Z, C, Y, X
    with pytest.raises(UNetError, match="4 axes.*channel"):
        as_stack(stack)
    assert as_stack(stack, channel_axis=1).shape == (2, 512, 512, 2)
    with pytest.raises(UNetError, match="not supported"):
        as_stack(stack[None])
    with pytest.raises(UNetError, match="channel axis must be a whole number from -4 to 3, not 5"):
        as_stack(stack, channel_axis=5)


def test_non_numeric_images(annotations):
    with pytest.raises(UNetError, match="numeric"):
        as_stack(np.full((16, 16), "a"))


@pytest.mark.parametrize("axis", [1.5, "0", True, [0]])
def test_a_channel_axis_must_be_an_integer(image, axis):
    rgb = np.stack([image] * 3, axis=-1)
    with pytest.raises(UNetError, match="channel axis must be a whole number"):
        as_stack(rgb, channel_axis=axis)
    with pytest.raises(UNetError, match="channel axis must be a whole number"):
        spatial_shape(rgb, channel_axis=axis)


def test_a_channel_axis_outside_the_image_is_refused_before_training(image, annotations):
    with pytest.raises(UNetError, match="channel axis -3 does not exist in a 2D image"):
        Trainer(image, annotations, channel_axis=-3, settings=SETTINGS)


def test_empty_ragged_and_nested_list_images():
    with pytest.raises(UNetError, match="empty"):
        as_stack(np.zeros((0, 64, 64)))
    with pytest.raises(UNetError, match="must be an array"):
        as_stack([[1, 2], [3]])
    assert as_stack([[0.0] * 16] * 16).shape == (1, 16, 16, 1)


def test_a_torch_tensor_is_an_image_like_its_numpy_array():
    tensor = torch.rand(16, 20)
    stack = as_stack(tensor)
    assert isinstance(stack, np.ndarray) and stack.shape == (1, 16, 20, 1)
    np.testing.assert_array_equal(stack[0, ..., 0], tensor.numpy())
    with pytest.raises(UNetError, match="must be an array"):
        as_stack(torch.rand(16, 20, requires_grad=True))  # numpy() refuses it: said in a line


@pytest.mark.parametrize(
    "kwargs",
    [
        {"low_percentile": np.nan},
        {"low_percentile": 50, "high_percentile": 10},
        {"high_percentile": 101},
        {"low_percentile": "1"},
        {"mode": "per-slice"},
        {"low": [0.0], "high": [np.inf]},
        {"low": [0.0], "high": []},
        {"low": "0", "high": "1"},
    ],
)
def test_bad_normalisation_settings(kwargs):
    with pytest.raises(UNetError, match="normalisation"):
        Normalization(**kwargs)


@pytest.mark.parametrize(
    "convert",
    [
        lambda x: x.astype(np.float64) * 1e300,
        lambda x: x.astype(np.float64) * 1e-300,
        lambda x: x.astype(np.int64) + 10**15,
        lambda x: x.astype(np.int32) + 10**9,
        lambda x: x.astype(np.uint64) * 2**40,
    ],
    ids=["float64 huge", "float64 tiny", "int64 offset", "int32 offset", "uint64 scaled"],
)
def test_wide_types_predict_and_train_like_their_values(trained, image, annotations, convert):
    from napari_unet.engine.predict import predict

    expected = predict(trained, image, device="cpu").labels
    wide = convert(image)
    assert (predict(trained, wide, device="cpu").labels == expected).mean() > 0.999
    settings = TrainSettings(steps=2, device="cpu", **TINY)
    _, segmenter = run_to_end(Trainer(wide, annotations, settings=settings).run())
    assert np.isfinite(segmenter.normalization.low + segmenter.normalization.high).all()


def test_images_are_seen_as_slices_rows_columns_channels_without_a_copy():
    image = np.zeros((20, 30), np.uint16)
    stack = as_stack(image)
    assert stack.shape == (1, 20, 30, 1) and np.shares_memory(stack, image)
    assert as_stack(np.zeros((3, 20, 30))).shape == (3, 20, 30, 1)
    assert as_stack(np.zeros((2, 20, 30)), channel_axis=0).shape == (1, 20, 30, 2)
    assert as_stack(np.zeros((5, 2, 20, 30)), channel_axis=-3).shape == (5, 20, 30, 2)
    assert spatial_shape(np.zeros((5, 2, 20, 30)), channel_axis=1) == (5, 20, 30)
    assert spatial_shape(np.zeros((20, 30))) == (20, 30)


def test_a_last_axis_of_3_or_4_is_guessed_as_channels_as_napari_does():
    assert guess_channel_axis((512, 512, 3)) == 2
    assert guess_channel_axis((5, 512, 512, 4)) == 3
    assert guess_channel_axis((512, 512)) is None
    assert guess_channel_axis((3, 512, 512)) is None
    assert guess_channel_axis((512, 512, 5)) is None
    assert guess_channel_axis((4, 4, 3)) is None  # a tiny 3-slice stack, not an RGB image


def test_channel_axes_and_channel_counts_are_checked():
    assert check_channel_axis(None, 3) is None
    assert check_channel_axis(-1, 3) == -1
    with pytest.raises(UNetError, match="channel axis 2 does not exist in a 2D image"):
        check_channel_axis(2, 2)
    check_channels(np.zeros((1, 8, 8, 2)), 2)
    with pytest.raises(UNetError, match=r"expects 2 channel\(s\) but the image has 1"):
        check_channels(np.zeros((1, 8, 8, 1)), 2)


def test_types_float32_holds_exactly_are_read_as_float32():
    for dtype in (bool, np.uint8, np.int8, np.uint16, np.int16, np.float16, np.float32):
        assert fits_float32(dtype), dtype
    for dtype in (np.int32, np.uint32, np.int64, np.uint64, np.float64):
        assert not fits_float32(dtype), dtype


def test_wide_integers_keep_their_precision_until_normalised():
    image = 10**15 + np.arange(64 * 64, dtype=np.int64).reshape(64, 64)
    stack = as_stack(image)
    normalization = Normalization(0, 100).fitted(stack)
    data = read_slice(stack, 0, normalization)
    assert data.dtype == np.float32 and data.shape == (64, 64, 1)
    assert data.min() == 0 and data.max() == 1
    assert len(np.unique(data)) == 64 * 64  # a float32 copy of 10**15 + i would merge them


def test_percentiles_are_measured_per_channel_and_applied_per_channel():
    rng = np.random.default_rng(0)
    data = np.stack([rng.random((32, 32)), 100 + 10 * rng.random((32, 32))], axis=-1)
    stack = as_stack(data, channel_axis=-1)
    normalization = Normalization(0, 100).fitted(stack)
    assert np.allclose(normalization.low, data.min(axis=(0, 1)))
    assert np.allclose(normalization.high, data.max(axis=(0, 1)))
    normalised = read_slice(stack, 0, normalization)
    assert np.allclose(normalised.min(axis=(0, 1)), 0, atol=1e-6)
    assert np.allclose(normalised.max(axis=(0, 1)), 1, atol=1e-6)
    assert Normalization(**normalization.to_dict()) == normalization


def test_fixed_normalisation_is_reused_and_image_normalisation_is_measured_again():
    stack = as_stack(np.arange(64 * 64, dtype=np.float32).reshape(64, 64))
    fixed = Normalization(mode="fixed", low=[0.0], high=[10.0])
    assert fixed.for_image(stack) is fixed
    measured = Normalization(low=[0.0], high=[10.0]).for_image(stack)
    assert measured == Normalization().fitted(stack) and measured.high != [10.0]
    unmeasured = Normalization(mode="fixed")
    assert unmeasured.for_image(stack) == unmeasured.fitted(stack) != unmeasured


def test_normalisation_applies_in_place_to_arrays_and_tensors_along_any_axis():
    normalization = Normalization(low=[1.0, 10.0], high=[3.0, 30.0])
    data = np.array([[[2.0, 3.0]], [[20.0, 10.0]]], np.float32)  # channels first
    tensor = torch.from_numpy(data.copy())
    assert normalization.apply(data, channel_axis=0) is data
    assert data.tolist() == [[[0.5, 1.0]], [[0.5, 0.0]]]
    assert normalization.apply(tensor, channel_axis=0) is tensor
    assert tensor.tolist() == data.tolist()
    assert Normalization(low=[5.0], high=[5.0]).spread().tolist() == [1e-6]


@pytest.mark.parametrize(
    ("labels", "scale", "expected"),
    [
        (None, None, (False, 1.0)),  # nothing says: a series, as before
        (["axis -3", "axis -2", "axis -1"], [1, 1, 1], (False, 1.0)),
        (["t", "y", "x"], [2.0, 1.0, 1.0], (False, 1.0)),
        (["time", "y", "x"], None, (False, 1.0)),
        (["z", "y", "x"], None, (True, 1.0)),
        (["Z", "y", "x"], [0.4, 0.2, 0.2], (True, 2.0)),
        (["c", "z", "y", "x"], [1, 3.0, 1.5, 1.5], (True, 2.0)),
        (["axis -3", "axis -2", "axis -1"], [2.5, 1, 1], (True, 2.5)),
        (["z", "y", "x"], [float("nan"), 1, 1], (True, 1.0)),
        (["z", "y", "x"], [1, 1, 0], (True, 1.0)),
    ],
)
def test_a_stack_is_guessed_a_volume_or_a_series(labels, scale, expected):
    assert guess_volume(labels, scale) == expected
