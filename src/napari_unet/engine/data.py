"""Annotated slices turned into training crops and held-back validation pixels."""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .annotations import annotated_slices, check_annotations, contacts
from .augment import patch_offsets
from .errors import UNetError
from .images import Normalization, read_slice
from .losses import IGNORE, class_balance, weight_map
from .resizing import resize, resize_annotations, scaled_shape

VALIDATION_BLOCK = 32
MIN_BOUNDARY = 0.01
"""Held-back pixels are scored only if at least this fraction lies on a class boundary."""


@dataclass
class TrainingSet:
    """Annotated slices in memory, padded so that any crop around an annotation fits."""

    images: torch.Tensor  # (N, C, Y, X) float32, normalised
    targets: torch.Tensor  # (N, Y, X) int64 class index, IGNORE where not annotated
    weights: torch.Tensor  # (N, Y, X) float32 loss weights
    validation: torch.Tensor  # (N, Y, X) int64 held-back targets, IGNORE elsewhere
    counts: dict[int, int]
    pad: int
    start: torch.Tensor | None = None  # (N, K, Y, X) kept start-model probabilities, else 0

    @classmethod
    def build(
        cls,
        stack,
        annotations,
        normalization: Normalization,
        crop: int,
        n_classes: int | None = None,
        w0: float = 10.0,
        sigma: float = 5.0,
        validation_fraction: float = 0.1,
        seed: int = 0,
        answers: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
        scale: float = 1.0,
    ) -> "TrainingSet":
        """Load the annotated slices of a (Z, Y, X, C) stack and its (Z, Y, X) annotations,
        rescaled by ``scale`` (:mod:`.object_size`).

        ``answers`` (fine-tuning) maps the normalised slices and their annotation ids to the
        start model's kept probabilities (:mod:`.start_answers`); with it, one annotated id
        alone is enough."""
        picks = annotated_slices(annotations)
        if not picks:
            raise UNetError(
                "no pixel is annotated: paint background (1) and at least one class (2)"
            )
        labels = np.stack([np.asarray(annotations[z]) for z in picks])
        images = np.stack([read_slice(stack, z, normalization) for z in picks])
        if scale != 1:
            shape = scaled_shape(labels.shape[1:], scale)
            images = resize(torch.from_numpy(images).permute(0, 3, 1, 2), shape)
            images = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
            labels = resize_annotations(labels, scale)
        counts = check_annotations(labels, n_classes, alone=answers is not None)
        n_classes = max(n_classes or 0, max(counts))
        if all(np.ptp(images[i][labels[i] > 0]) == 0 for i in range(len(picks))):
            raise UNetError("the image is constant where it is annotated: nothing to learn")
        balance = class_balance(counts, n_classes)
        weights = np.stack(
            [weight_map(lab.astype(np.int64), balance, w0, sigma) for lab in labels]
        )
        targets = labels.astype(np.int64) - 1
        validation = _hold_back(targets, validation_fraction, np.random.default_rng(seed))
        pad = crop // 2 + 1
        height, width = images.shape[1:3]
        mode = "reflect" if min(height, width) > pad else "symmetric"
        spatial = ((0, 0), (pad, pad), (pad, pad))
        start = None
        if answers is not None:
            start = np.pad(answers(images, labels), ((0, 0),) + spatial)
            start = torch.from_numpy(start)
        images = np.pad(images, spatial + ((0, 0),), mode=mode)
        return cls(
            images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            targets=torch.from_numpy(np.pad(targets, spatial, constant_values=IGNORE)),
            weights=torch.from_numpy(np.pad(weights, spatial)),
            validation=torch.from_numpy(np.pad(validation, spatial, constant_values=IGNORE)),
            counts=counts,
            pad=pad,
            start=start,
        )

    def validation_windows(
        self, size: int = 128, limit: int = 16
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Up to ``limit`` (image, held-back targets) windows around validation blocks."""
        b, p = VALIDATION_BLOCK, self.pad
        mask = (self.validation[:, p:, p:] >= 0).float().unsqueeze(1)
        held = torch.nonzero(F.max_pool2d(mask, b, ceil_mode=True)[:, 0] > 0)
        if not len(held):
            return None
        picks = held[torch.linspace(0, len(held) - 1, min(limit, len(held))).long()]
        _, height, width = self.validation.shape
        size = min(size, height, width)
        images, targets = [], []
        for z, by, bx in picks.tolist():
            y = min(max(p + by * b + b // 2 - size // 2, 0), height - size)
            x = min(max(p + bx * b + b // 2 - size // 2, 0), width - size)
            images.append(self.images[z, :, y : y + size, x : x + size])
            targets.append(self.validation[z, y : y + size, x : x + size])
        return torch.stack(images), torch.stack(targets)

    def sampler(
        self, device: torch.device, generator: torch.Generator, transform: bool = True
    ) -> "PatchSampler":
        return PatchSampler(self, device, generator, transform)


class PatchSampler:
    """Random patches centred near annotated pixels, each class picked equally often; a
    class the start model knows but the annotations lack is centred on its kept answers, so
    that fine-tuning on corrections of one class still sees the others.

    The padded slices, targets, weights (and kept start answers) live on the device, stacked
    into one tall image; a batch is cropped and (with ``transform``) deformed by one
    ``grid_sample`` for image, weights and start answers and one for the targets, with no
    Python loop over patches and no copy to or from the host. Gray values are left to
    :func:`augment.vary_gray_values`.
    """

    def __init__(
        self,
        data: TrainingSet,
        device: torch.device,
        generator: torch.Generator,
        transform: bool = True,
    ):
        self.generator = generator
        self.transform = transform
        count, channels, self.height, self.width = data.images.shape
        self.channels = channels
        tall = (1, -1, count * self.height, self.width)
        parts = [data.images, data.weights.unsqueeze(1)]
        self.answers = 0 if data.start is None else data.start.shape[1]
        sources = torch.cat(parts + ([data.start] if self.answers else []), 1)
        self.sources = sources.transpose(0, 1).reshape(tall).to(device)
        self.targets = (data.targets - IGNORE).float().reshape(1, 1, -1, self.width).to(device)
        flat = data.targets.reshape(-1)
        by_class = [torch.nonzero(flat == k)[:, 0] for k in range(int(flat.max()) + 1)]
        if self.answers:
            by_class += [
                torch.nonzero(data.start[:, k].reshape(-1) > 0.5)[:, 0]
                for k in range(self.answers)
                if k >= len(by_class) or not len(by_class[k])
            ]
        by_class = [where for where in by_class if len(where)]
        self.counts = torch.tensor([len(w) for w in by_class], device=device)
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.where = torch.cat(by_class).to(device)
        self.extent = torch.tensor([count * self.height, self.width], device=device).float()

    def sample(
        self, batch: int, size: int, reach: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(images, targets, weights, start answers or None) of ``batch`` patches of side
        ``size``; ``reach`` is the half-side of the region a patch may read, which must fit
        in the slice's padding."""
        centres = self._centres(batch, reach)
        offsets = patch_offsets(batch, size, self.generator, self.transform)
        points = offsets + centres[:, None, None, :]
        grid = ((2 * points + 1) / self.extent - 1).flip(-1).reshape(1, batch * size, size, 2)
        sampled = F.grid_sample(
            self.sources, grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        sampled = sampled.reshape(-1, batch, size, size).transpose(0, 1)
        targets = F.grid_sample(self.targets, grid, mode="nearest", align_corners=False)
        targets = targets.reshape(batch, size, size).long() + IGNORE
        c = self.channels
        answers = sampled[:, c + 1 :] if self.answers else None
        return sampled[:, :c], targets, sampled[:, c], answers

    def _centres(self, batch: int, reach: int) -> torch.Tensor:
        """(batch, 2) patch centres (row in the tall image, column), each near a pixel of a
        class drawn uniformly, shifted by up to a quarter patch, kept inside the padding."""
        device = self.where.device

        def uniform(high: torch.Tensor) -> torch.Tensor:
            draw = torch.rand(high.shape, generator=self.generator, device=device)
            return torch.minimum((draw * high).long(), high - 1)

        classes = uniform(torch.full((batch,), len(self.counts), device=device))
        pixel = self.where[self.starts[classes] + uniform(self.counts[classes])]
        z, y, x = pixel // (self.height * self.width), pixel // self.width, pixel % self.width
        shift = uniform(torch.full((batch, 2), reach, device=device)) - reach // 2
        y = (y % self.height + shift[:, 0]).clamp(reach, self.height - reach)
        x = (x + shift[:, 1]).clamp(reach, self.width - reach)
        return torch.stack([z * self.height + y, x], 1).float()


def _hold_back(targets: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Move a fraction of the annotated 32x32 blocks from ``targets`` to the returned array.

    Nothing is held back where that would leave a class without training pixels, nor where
    the classes hardly ever touch (scribbles): pixels far from any class boundary are too easy
    for a score on them to mean anything.
    """
    validation = np.full_like(targets, IGNORE)
    annotated = targets != IGNORE
    if boundary_pixels(targets).sum() < MIN_BOUNDARY * annotated.sum():
        return validation
    b = VALIDATION_BLOCK
    blocks = [
        (z, y, x)
        for z in range(targets.shape[0])
        for y in range(0, targets.shape[1], b)
        for x in range(0, targets.shape[2], b)
        if (targets[z, y : y + b, x : x + b] != IGNORE).any()
    ]
    count = int(len(blocks) * fraction)
    if count == 0:
        return validation
    classes = np.unique(targets[annotated])
    for i in rng.choice(len(blocks), size=count, replace=False):
        z, y, x = blocks[i]
        box = (z, slice(y, y + b), slice(x, x + b))
        validation[box] = targets[box]
    held = validation != IGNORE
    starved = len(np.unique(targets[~held & annotated])) < len(classes)
    if starved or boundary_pixels(validation).sum() < MIN_BOUNDARY * held.sum():
        validation[held] = IGNORE
    else:
        targets[held] = IGNORE
    return validation


def boundary_pixels(targets: np.ndarray) -> np.ndarray:
    """Annotated pixels of (N, Y, X) targets with a 4-neighbour annotated as another class."""
    return contacts(targets, targets != IGNORE)
