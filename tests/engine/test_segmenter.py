"""A U-Net with its class names and normalisation: made new, checked, described."""

import pytest
import torch

from napari_unet.engine.errors import UNetError
from napari_unet.engine.images import Normalization
from napari_unet.engine.model import UNetConfig
from napari_unet.engine.segmenter import Segmenter, check_class_names
from napari_unet.engine.train import Trainer, TrainSettings


@pytest.mark.parametrize("names", [[1, 2], "xyz", 7, ["background", None]])
def test_class_names_that_are_not_texts_are_refused_before_training(image, annotations, names):
    with pytest.raises(UNetError, match="class names must be a list of texts"):
        Trainer(image, annotations, settings=TrainSettings(steps=1), class_names=names)
    with pytest.raises(UNetError, match="class names must be a list of texts"):
        Segmenter.new(UNetConfig(depth=1, width=2), names)


def test_a_new_segmenter_is_an_untrained_network_in_eval_mode_with_default_names():
    segmenter = Segmenter.new(UNetConfig(depth=1, width=2, n_classes=3))
    assert segmenter.class_names == ["background", "class 2", "class 3"]
    assert segmenter.n_classes == 3 and segmenter.in_channels == 1
    assert segmenter.config is segmenter.net.config and not segmenter.net.training
    assert segmenter.normalization == Normalization() and segmenter.history == []


def test_the_seed_decides_the_initial_weights():
    def weights(seed):
        config = UNetConfig(depth=1, width=2)
        return torch.cat([p.flatten() for p in Segmenter.new(config, seed=seed).net.parameters()])

    assert torch.equal(weights(1), weights(1))
    assert not torch.equal(weights(1), weights(2))


def test_class_names_are_texts_one_per_class():
    assert check_class_names(None) is None
    assert check_class_names(("background", "cell")) == ["background", "cell"]
    names = Segmenter.new(UNetConfig(depth=1, width=2), ("background", "cell")).class_names
    assert names == ["background", "cell"]
    with pytest.raises(UNetError, match="3 class names for 2 classes"):
        Segmenter.new(UNetConfig(depth=1, width=2), ["a", "b", "c"])


def test_the_description_names_size_channels_classes_and_rounds():
    segmenter = Segmenter.new(UNetConfig(in_channels=3, depth=2, width=4), ["bg", "cell"])
    described = segmenter.describe().lower()
    assert "\n" not in described
    for part in ("depth 2", "width 4", "3 channel", "bg, cell", "0 round"):
        assert part in described, (part, described)
    segmenter.history.append({"steps": 10})
    assert "1 round" in segmenter.describe().lower()
