import numpy as np
import pytest
import torch

from napari_unet.engine.augment import crop_size
from napari_unet.engine.data import TrainingSet, boundary_pixels
from napari_unet.engine.images import Normalization, as_stack
from napari_unet.engine.losses import IGNORE


def label_map(shape=(2, 96, 80)) -> np.ndarray:
    """Diagonal stripes of classes 1..3, a different phase per slice; 0 on the right."""
    z, y, x = np.indices(shape)
    labels = ((y + 2 * x + 7 * z) // 24 % 3 + 1).astype(np.uint8)
    labels[:, :, -10:] = 0
    return labels


def stacked(labels: np.ndarray, patch: int, validation_fraction: float = 0.0) -> TrainingSet:
    images = as_stack(labels.astype(np.float32))
    return TrainingSet.build(
        images,
        labels,
        Normalization().for_image(images),
        crop_size(patch),
        w0=0,
        validation_fraction=validation_fraction,
    )


def test_sampled_patches_have_the_requested_shapes_and_ids():
    data = stacked(label_map(), 32)
    sampler = data.sampler(torch.device("cpu"), torch.Generator().manual_seed(0))
    images, targets, weights, _ = sampler.sample(6, 32, crop_size(32) // 2)
    assert images.shape == (6, 1, 32, 32) and images.dtype == torch.float32
    assert targets.shape == (6, 32, 32) and targets.dtype == torch.int64
    assert weights.shape == (6, 32, 32)
    assert set(targets.unique().tolist()) <= {IGNORE, 0, 1, 2}
    assert (targets != IGNORE).float().mean() > 0.5


def test_image_targets_and_weights_get_the_same_geometric_transform():
    labels = label_map()
    data = stacked(labels, 48)
    # image and weights both equal to the target ids (-1 where not annotated)
    ids = data.targets.float()
    data.images = ids.unsqueeze(1).clone()
    data.weights = ids.clone()
    sampler = data.sampler(torch.device("cpu"), torch.Generator().manual_seed(3))
    images, targets, weights, _ = sampler.sample(8, 48, crop_size(48) // 2)
    assert torch.equal(images[:, 0], weights)
    exact = (images[:, 0] - images[:, 0].round()).abs() < 1e-3
    assert exact.float().mean() > 0.8 and (targets[exact] >= 0).float().mean() > 0.3
    agree = images[:, 0].round().long()[exact] == targets[exact]
    assert agree.float().mean() > 0.99


def test_without_transform_a_patch_is_an_exact_crop():
    data = stacked(label_map(), 32)
    n, _, height, width = data.images.shape
    data.images = torch.arange(n * height * width, dtype=torch.float32).view(n, 1, height, width)
    sampler = data.sampler(torch.device("cpu"), torch.Generator().manual_seed(0), False)
    images, targets, _, _ = sampler.sample(4, 32, 16)
    where = images[:, 0].round().long()
    assert (images[:, 0] - where).abs().max() < 0.05
    rows, columns = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    assert torch.equal(where, where[:, :1, :1] + rows * width + columns)
    assert torch.equal(targets, data.targets.flatten()[where])


def test_each_class_is_drawn_about_equally_often():
    labels = np.ones((1, 200, 200), np.uint8)
    labels[0, 100:104, 100:104] = 2  # 16 pixels among 40000
    data = stacked(labels, 32)
    sampler = data.sampler(torch.device("cpu"), torch.Generator().manual_seed(0), False)
    _, targets, _, _ = sampler.sample(200, 32, 16)
    with_class = (targets == 1).flatten(1).any(1).float().mean()
    assert 0.3 < with_class < 0.8


def test_boundary_pixels_are_where_classes_touch():
    targets = np.full((1, 6, 6), IGNORE)
    targets[0, :, :2] = 0
    targets[0, :, 2:4] = 1
    targets[0, :, 5] = 0  # separated from class 1 by an unannotated column
    edge = boundary_pixels(targets)
    assert edge[0, :, 1].all() and edge[0, :, 2].all()
    assert not edge[0, :, [0, 3, 4, 5]].any()


@pytest.mark.parametrize(("touching", "held"), [(True, True), (False, False)])
def test_pixels_are_held_back_only_where_classes_touch(touching, held):
    labels = label_map((1, 256, 256))
    if not touching:  # scribbles: classes separated by unannotated gaps
        labels[np.indices(labels.shape)[1] % 12 < 3] = 0
        labels[(np.indices(labels.shape)[2] * 2 + np.indices(labels.shape)[1]) % 12 < 3] = 0
        labels[boundary_pixels(labels.astype(np.int64) - 1)] = 0
    data = stacked(labels, 32, validation_fraction=0.2)
    assert ((data.validation != IGNORE).any()) == held
    assert (data.validation_windows() is not None) == held


def test_a_rescaled_set_keeps_images_and_annotations_aligned():
    labels = label_map((2, 96, 80))
    images = as_stack(labels.astype(np.float32))
    normalization = Normalization().for_image(images)
    data = TrainingSet.build(images, labels, normalization, 32, w0=0, scale=0.5)
    p = data.pad
    image, targets = data.images[:, 0, p:-p, p:-p], data.targets[:, p:-p, p:-p]
    assert image.shape == targets.shape == (2, 48, 40)
    assert set(data.counts) == {1, 2, 3}
    assert (targets[:, :, -4:] == IGNORE).all()  # the unannotated columns stay unannotated
    annotated = targets != IGNORE
    # the image equals the ids: after rescaling, each target sits on its own id's values
    by_id = [image[annotated & (targets == k)].mean().item() for k in range(3)]
    assert by_id == sorted(by_id) and by_id[2] - by_id[0] > 0.5
    corr = np.corrcoef(image[annotated].numpy(), targets[annotated].numpy())[0, 1]
    assert corr > 0.9
