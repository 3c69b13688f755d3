"""A smoke test of the script that makes the built-in nuclei model, on tiny synthetic data (the
real run downloads its data while building, takes an hour and is not run here)."""

import sys
from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from napari_unet.engine.train import TrainSettings
from napari_unet.storage.loading import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "pretrain"))
import nuclei as nuclei_script  # noqa: E402


def synthetic(seed: int) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(name, image, instances, micronuclei) of a few bright disks, two of them touching."""
    rng = np.random.default_rng(seed)
    instances = np.zeros((160, 160), np.int32)
    centres = [(40, 40), (40, 61), (110, 100), (120, 40)]
    for i, centre in enumerate(centres, start=1):
        instances[disk(centre, 11, shape=instances.shape)] = i
    image = (instances > 0) * 200.0 + rng.normal(20, 5, instances.shape)
    micro = np.zeros(instances.shape, bool)
    micro[disk((80, 140), 3, shape=micro.shape)] = True
    image[micro] = 150
    return f"synthetic {seed}", image.astype(np.float32), instances, micro


def test_the_corpus_keeps_touching_nuclei_apart_and_ignores_micronuclei():
    rng = np.random.default_rng(0)
    images, annotations = nuclei_script.corpus([synthetic(0)], rng, copies=2)
    assert images.shape[1:] == (nuclei_script.TILE, nuclei_script.TILE)
    assert images.dtype == np.float32 and annotations.dtype == np.uint8
    assert set(np.unique(annotations)) == {0, 1, 2}
    assert 0.5 < np.percentile(images, 99.8) < 2  # normalised per image


def test_a_few_steps_make_a_model_with_its_record():
    settings = TrainSettings(
        steps=2, depth=2, width=4, patch_size=64, batch_size=2, seed=0, device="cpu"
    )
    settings.validation_fraction = 0.0
    model = nuclei_script.make_model([synthetic(1)], [synthetic(2)], settings, copies=1)
    record = model.history[-1]["pretraining"]
    assert model.class_names == nuclei_script.CLASS_NAMES
    assert record["data"]["images"] == ["synthetic 1"]
    assert 0 <= record["test_object_f1"]["mean"] <= 1
    assert record["versions"]["torch"]
    # the model's object size: what the script measures on its training images
    assert model.object_diameter == nuclei_script.object_size([synthetic(1)])
    low, high = nuclei_script.DIAMETERS
    assert low < model.object_diameter < high


def nuclei_of(shape: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(name, image, instances, micronuclei) of eight separate discs or thin ellipses."""
    instances = np.zeros((200, 400), np.int32)
    for i in range(8):
        centre = (50 + 100 * (i // 4), 50 + 100 * (i % 4))
        where = disk(centre, 15) if shape == "discs" else ellipse(*centre, 8, 28)
        instances[where] = i + 1
    image = (instances > 0) * 200.0
    return shape, image.astype(np.float32), instances, np.zeros(instances.shape, bool)


def test_the_object_size_is_the_corpus_centre_in_the_width_the_plugin_measures():
    centre = np.sqrt(nuclei_script.DIAMETERS[0] * nuclei_script.DIAMETERS[1])
    # discs: as wide as a disc of their area
    assert nuclei_script.object_size([nuclei_of("discs")]) == pytest.approx(centre, rel=0.05)
    # thin ellipses are narrower than a disc of their area: the width at the centre is less
    thin = nuclei_script.object_size([nuclei_of("ellipses")])
    assert 0.5 * centre < thin < 0.8 * centre
    assert nuclei_script.object_size([synthetic(0)]) == round(centre, 1)  # too few: the centre


def test_the_builtin_model_has_an_object_size_within_the_corpus():
    low, high = nuclei_script.DIAMETERS
    assert low < load_model("nuclei").object_diameter < high
