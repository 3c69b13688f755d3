import math

import numpy as np
import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.engine.model import UNet, UNetConfig
from napari_unet.engine.train import Trainer, TrainSettings

from conftest import TINY

BAD = [
    ({"steps": 0}, "number of steps"),
    ({"steps": -5}, "number of steps"),
    ({"steps": math.nan}, "number of steps"),
    ({"steps": 2.5}, "number of steps"),
    ({"steps": None, "time_limit": None}, "steps, a time limit"),
    ({"time_limit": math.nan}, "time limit"),
    ({"time_limit": math.inf}, "time limit"),
    ({"time_limit": 0}, "time limit"),
    ({"time_limit": -1.0}, "time limit"),
    ({"batch_size": 0}, "batch size"),
    ({"batch_size": math.nan}, "batch size"),
    ({"patch_size": 0}, "patch size"),
    ({"patch_size": 100}, "multiple of 16"),
    ({"patch_size": 10**6}, "patch size"),
    ({"w0": -1.0}, "w0"),
    ({"w0": math.nan}, "w0"),
    ({"sigma": 0}, "sigma"),
    ({"sigma": -2.0}, "sigma"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"depth": 0}, "depth"),
    ({"depth": 9}, "depth"),
    ({"width": 0}, "width"),
    ({"width": "16"}, "width"),
    ({"learning_rate": 0}, "learning rate"),
    ({"learning_rate": math.inf}, "learning rate"),
    ({"learning_rate": 5.0}, "learning rate"),
    ({"weight_decay": -0.1}, "weight decay"),
    ({"validation_fraction": 0.9}, "validation fraction"),
    ({"eval_every": 0}, "eval_every"),
    ({"augment": "yes"}, "augment"),
    ({"device": "tpu"}, "unknown device"),
    ({"keep": "newest"}, "keep must be"),
    ({"report_every": -1.0}, "report interval"),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_settings_are_refused_with_a_clear_error(changes, message):
    with pytest.raises(UNetError, match=message):
        TrainSettings(**changes).check()


@pytest.mark.parametrize(("changes", "message"), BAD[:6])
def test_the_trainer_checks_its_settings_before_any_work(image, annotations, changes, message):
    with pytest.raises(UNetError, match=message):
        Trainer(image, annotations, settings=TrainSettings(**changes))


def test_the_defaults_are_valid_and_sizes_are_chosen_for_the_device(image, annotations):
    TrainSettings().check()
    trainer = Trainer(image, annotations, settings=TrainSettings(device="cpu"))
    assert trainer.patch_size in (128, 256)
    assert trainer.architecture == {"depth": 3, "width": 16}


def test_a_patch_far_larger_than_the_image_is_refused():
    small = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    labels = np.ones((40, 50), np.uint8)
    labels[10:20, 10:20] = 2
    with pytest.raises(UNetError, match="far larger than the image"):
        Trainer(small, labels, settings=TrainSettings(patch_size=256))
    trainer = Trainer(
        small, labels, settings=TrainSettings(device="cpu", **{**TINY, "patch_size": None})
    )
    assert trainer.patch_size == 64  # the default, cut down to the image


def test_the_patch_must_suit_the_depth(image, annotations):
    with pytest.raises(UNetError, match="multiple of 64"):
        Trainer(image, annotations, settings=TrainSettings(depth=6, patch_size=96))


def test_wrong_argument_types_give_clear_errors(image, annotations):
    with pytest.raises(UNetError, match="TrainSettings"):
        Trainer(image, annotations, settings={"steps": 3})
    with pytest.raises(UNetError, match="Segmenter"):
        Trainer(image, annotations, segmenter=UNet(UNetConfig()))
    with pytest.raises(UNetError, match="arrays"):
        Trainer(image, annotations.tolist())
