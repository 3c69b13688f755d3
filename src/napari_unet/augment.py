"""Augmentation of training patches, identical for image, targets and weights.

One random spatial transform per patch (rotation, flip, scale and a smooth elastic deformation
from random displacements on a coarse 3x3 grid) is applied with ``grid_sample``, then a random
gray-value change to the image alone.
"""

import math

import torch
import torch.nn.functional as F

from .losses import IGNORE


def sampling_grid(
    batch: int, size: int, source: int, generator: torch.Generator, elastic_sigma: float = 10.0
) -> torch.Tensor:
    """Grids mapping a ``size`` output onto the centre of a ``source`` input, transformed."""
    angle = torch.rand(batch, generator=generator) * 2 * math.pi
    flip = torch.where(torch.rand(batch, generator=generator) < 0.5, -1.0, 1.0)
    scale = (0.85 + 0.3 * torch.rand(batch, generator=generator)) * size / source
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, torch.zeros(batch)], 1),
            torch.stack([sin * flip, cos, torch.zeros(batch)], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, [batch, 1, size, size], align_corners=False)
    coarse = torch.randn(batch, 2, 3, 3, generator=generator) * (2 * elastic_sigma / source)
    displacement = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    return grid + displacement.permute(0, 2, 3, 1)


def augment(
    images: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    size: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Transform (B, C, S, S) crops into (B, C, size, size) augmented patches."""
    batch, _, source, _ = images.shape
    grid = sampling_grid(batch, size, source, generator).to(images.device)
    images = F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )
    shifted = (targets - IGNORE).unsqueeze(1).float()
    targets = F.grid_sample(shifted, grid, mode="nearest", align_corners=False)
    targets = targets.squeeze(1).long() + IGNORE
    weights = F.grid_sample(weights.unsqueeze(1), grid, mode="bilinear", align_corners=False)
    contrast = 0.7 + 0.6 * torch.rand(batch, 1, 1, 1, generator=generator)
    brightness = 0.2 * torch.rand(batch, 1, 1, 1, generator=generator) - 0.1
    noise = 0.03 * torch.rand(batch, 1, 1, 1, generator=generator)
    jitter = torch.randn(images.shape, generator=generator) * noise
    images = images * contrast.to(images) + brightness.to(images) + jitter.to(images)
    return images, targets, weights.squeeze(1)


def crop_size(size: int) -> int:
    """The crop that a ``size`` patch is sampled from, large enough for any rotation."""
    return int(math.ceil(size * 1.15 * math.sqrt(2) / 2)) * 2 + 8
