"""The paper's augmentation, made on the device for a whole batch at once.

Each patch gets one random spatial transform (rotation, flip, scale and a smooth elastic
deformation from random displacements on a coarse 3x3 grid): :func:`patch_offsets` gives, for
every output pixel, where to read it relative to the patch centre, so that one ``grid_sample``
crops and transforms image, targets and weights alike. :func:`vary_gray_values` then changes
contrast, brightness and noise of the image alone.
"""

import math

import torch
import torch.nn.functional as F

ELASTIC_SIGMA = 10.0
SCALES = (0.85, 1.15)


def patch_offsets(
    batch: int,
    size: int,
    generator: torch.Generator,
    transform: bool = True,
    elastic_sigma: float = ELASTIC_SIGMA,
) -> torch.Tensor:
    """(batch, size, size, 2) source offsets (y, x) in pixels from each patch's centre.

    Without ``transform`` the offsets are the plain integer grid, i.e. an exact crop.
    """
    device = generator.device
    steps = torch.arange(size, device=device, dtype=torch.float32) - size // 2
    plain = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), -1)
    if not transform:
        return plain.expand(batch, size, size, 2)
    angle = torch.rand(batch, generator=generator, device=device) * 2 * math.pi
    flip = torch.where(torch.rand(batch, generator=generator, device=device) < 0.5, -1.0, 1.0)
    low, high = SCALES
    scale = low + (high - low) * torch.rand(batch, generator=generator, device=device)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    y, x = plain[..., 0], plain[..., 1] * flip[:, None, None]
    c, s = cos[:, None, None], sin[:, None, None]
    offsets = torch.stack([c * y - s * x, s * y + c * x], -1)
    coarse = torch.randn(batch, 2, 3, 3, generator=generator, device=device) * elastic_sigma
    elastic = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)
    elastic = elastic.clamp(-3 * elastic_sigma, 3 * elastic_sigma)
    return offsets + elastic.permute(0, 2, 3, 1)


def vary_gray_values(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random contrast (0.7-1.3), brightness (+-0.1) and Gaussian noise per patch."""
    batch, device = images.shape[0], images.device
    contrast = 0.7 + 0.6 * torch.rand(batch, 1, 1, 1, generator=generator, device=device)
    brightness = 0.2 * torch.rand(batch, 1, 1, 1, generator=generator, device=device) - 0.1
    noise = 0.03 * torch.rand(batch, 1, 1, 1, generator=generator, device=device)
    jitter = torch.randn(images.shape, generator=generator, device=device) * noise
    return images * contrast + brightness + jitter


def crop_size(size: int) -> int:
    """The side of the region a ``size`` patch can reach under any rotation and scale, plus
    three standard deviations of the elastic displacement on each side."""
    return int(math.ceil(size * SCALES[1] * math.sqrt(2) / 2)) * 2 + 2 * math.ceil(
        3 * ELASTIC_SIGMA
    )
