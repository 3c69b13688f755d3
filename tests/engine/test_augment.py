import torch

from napari_unet.engine.augment import crop_size, patch_offsets, vary_gray_values


def test_without_transform_the_offsets_are_the_plain_pixel_grid():
    offsets = patch_offsets(3, 8, torch.Generator().manual_seed(0), transform=False)
    assert offsets.shape == (3, 8, 8, 2)
    assert torch.equal(offsets[1, :, 0, 0], torch.arange(-4.0, 4.0))
    assert torch.equal(offsets[2, 0, :, 1], torch.arange(-4.0, 4.0))


def test_each_patch_gets_its_own_transform_within_the_crop():
    size = 64
    offsets = patch_offsets(16, size, torch.Generator().manual_seed(1), elastic_sigma=0.0)
    assert offsets.shape == (16, size, size, 2)
    assert not torch.allclose(offsets[0], offsets[1])
    assert offsets.abs().max() <= crop_size(size) // 2 - 4
    deformed = patch_offsets(16, size, torch.Generator().manual_seed(1))
    assert 1 < (deformed - offsets).abs().mean() < 30  # sigma 10 px elastic displacements


def test_the_same_seed_gives_the_same_transforms():
    first = patch_offsets(4, 32, torch.Generator().manual_seed(5))
    second = patch_offsets(4, 32, torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


def test_gray_values_change_per_patch_and_keep_the_shape():
    images = torch.ones(8, 2, 16, 16)
    varied = vary_gray_values(images, torch.Generator().manual_seed(0))
    assert varied.shape == images.shape
    means = varied.mean(dim=(1, 2, 3))
    assert means.std() > 0.01
    assert ((means > 0.5) & (means < 1.5)).all()
