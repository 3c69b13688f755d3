"""Every bad input gets a clear UNetError before anything is trained or written."""

import numpy as np
import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.engine.images import Normalization, as_stack, guess_channel_axis, spatial_shape
from napari_unet.engine.predict import Predictor, predict
from napari_unet.engine.train import Trainer, TrainSettings

from conftest import TINY, run_to_end

SETTINGS = TrainSettings(steps=2, **TINY)


def train(image, annotations, settings=SETTINGS, **kwargs):
    return run_to_end(Trainer(image, annotations, settings=settings, **kwargs).run())[1]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a * 0, "no pixel is annotated"),
        (lambda a: np.where(a == 2, 0, a), "only id 1 is annotated"),
        (lambda a: np.where(a == 2, 3, a), "skip 2"),
        (lambda a: a.astype(np.int16) - 2, "negative ids"),
        (lambda a: a.astype(np.float32), "integer ids"),
        (lambda a: np.where(a == 2, 183, a).astype(np.uint16), "instance labels"),
        (lambda a: a[:, :500], r"shape \(512, 500\).*\(512, 512\)"),
        (lambda a: a[None], "must match"),
    ],
)
def test_bad_annotations(image, annotations, edit, message):
    with pytest.raises(UNetError, match=message):
        train(image, edit(annotations))


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


def test_small_images_still_train_and_predict():
    rng = np.random.default_rng(0)
    image = rng.random((20, 24)).astype(np.float32)
    annotations = np.ones((20, 24), np.uint8)
    annotations[image > 0.5] = 2
    segmenter = train(image, annotations, TrainSettings(steps=2, **dict(TINY, patch_size=32)))
    assert predict(segmenter, image).labels.shape == (20, 24)


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
    with pytest.raises(UNetError, match="channel axis 5 does not exist"):
        as_stack(stack, channel_axis=5)


def test_non_numeric_images(annotations):
    with pytest.raises(UNetError, match="numeric"):
        as_stack(np.full((16, 16), "a"))


def test_fine_tuning_with_wrong_channels_or_new_classes(trained, image, annotations):
    with pytest.raises(UNetError, match="expects 1 channel.*has 2"):
        Trainer(np.stack([image, image], -1), annotations, channel_axis=-1, segmenter=trained)
    with pytest.raises(UNetError, match="knows ids 1..2.*id 3"):
        train(image, np.where(annotations == 2, 3, annotations), segmenter=trained)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": None, "time_limit": None}, "steps, a time limit"),
        ({"steps": 0}, "steps must be .* from 1"),
        ({"time_limit": -1}, "time limit"),
        ({"patch_size": 50}, "multiple of 16"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_bad_settings(image, annotations, kwargs, message):
    with pytest.raises(UNetError, match=message):
        Trainer(image, annotations, settings=TrainSettings(**kwargs))


def test_nan_in_a_slice_to_predict(trained, image):
    corrupt = np.stack([image, image]).astype(np.float32)
    corrupt[1, 5, 5] = np.nan
    predictor = Predictor(trained, corrupt)
    with pytest.raises(UNetError, match="slice 1.*NaN"):
        run_to_end(predictor.run())


@pytest.mark.parametrize("axis", [1.5, "0", True, [0]])
def test_a_channel_axis_must_be_an_integer(image, axis):
    rgb = np.stack([image] * 3, axis=-1)
    with pytest.raises(UNetError, match="channel axis must be an integer"):
        as_stack(rgb, channel_axis=axis)
    with pytest.raises(UNetError, match="channel axis must be an integer"):
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
