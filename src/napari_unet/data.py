"""Annotated slices turned into training crops and held-back validation pixels."""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .annotations import annotated_slices, check_annotations
from .errors import UNetError
from .images import Normalization, read_slice
from .losses import IGNORE, class_balance, weight_map

VALIDATION_BLOCK = 32


@dataclass
class TrainingSet:
    """Annotated slices in memory, padded so that any crop around an annotation fits."""

    images: torch.Tensor  # (N, C, Y, X) float32, normalised
    targets: torch.Tensor  # (N, Y, X) int64 class index, IGNORE where not annotated
    weights: torch.Tensor  # (N, Y, X) float32 loss weights
    validation: torch.Tensor  # (N, Y, X) int64 held-back targets, IGNORE elsewhere
    counts: dict[int, int]
    pad: int

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
    ) -> "TrainingSet":
        """Load the annotated slices of a (Z, Y, X, C) stack and its (Z, Y, X) annotations."""
        picks = annotated_slices(annotations)
        if not picks:
            raise UNetError(
                "no pixel is annotated: paint background (1) and at least one class (2)"
            )
        labels = np.stack([np.asarray(annotations[z]) for z in picks])
        counts = check_annotations(labels, n_classes)
        n_classes = n_classes or max(counts)
        images = np.stack([read_slice(stack, z) for z in picks])
        if all(np.ptp(images[i][labels[i] > 0]) == 0 for i in range(len(picks))):
            raise UNetError("the image is constant where it is annotated: nothing to learn")
        images = normalization.apply(images)
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
        images = np.pad(images, spatial + ((0, 0),), mode=mode)
        return cls(
            images=torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))),
            targets=torch.from_numpy(np.pad(targets, spatial, constant_values=IGNORE)),
            weights=torch.from_numpy(np.pad(weights, spatial)),
            validation=torch.from_numpy(np.pad(validation, spatial, constant_values=IGNORE)),
            counts=counts,
            pad=pad,
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

    def sampler(self, generator: torch.Generator) -> "CropSampler":
        return CropSampler(self, generator)


class CropSampler:
    """Random crops centred near annotated pixels, each class picked equally often."""

    def __init__(self, data: TrainingSet, generator: torch.Generator):
        self.data = data
        self.generator = generator
        self.by_class = [
            torch.nonzero(data.targets == k) for k in range(int(data.targets.max()) + 1)
        ]
        self.by_class = [coords for coords in self.by_class if len(coords)]

    def sample(self, batch: int, crop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of (images, targets, weights) crops of side ``crop``."""
        images, targets, weights = [], [], []
        half = crop // 2
        _, height, width = self.data.targets.shape
        for _ in range(batch):
            coords = self.by_class[self._randint(len(self.by_class))]
            z, y, x = coords[self._randint(len(coords))].tolist()
            y = min(max(y + self._randint(half) - half // 2, half), height - crop + half)
            x = min(max(x + self._randint(half) - half // 2, half), width - crop + half)
            box = (z, slice(y - half, y - half + crop), slice(x - half, x - half + crop))
            images.append(self.data.images[box[0], :, box[1], box[2]])
            targets.append(self.data.targets[box])
            weights.append(self.data.weights[box])
        return torch.stack(images), torch.stack(targets), torch.stack(weights)

    def _randint(self, high: int) -> int:
        return int(torch.randint(max(high, 1), (1,), generator=self.generator))


def _hold_back(targets: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Move a fraction of the annotated 32x32 blocks from ``targets`` to the returned array.

    Nothing is held back where that would leave a class without training pixels.
    """
    validation = np.full_like(targets, IGNORE)
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
    classes = np.unique(targets[targets != IGNORE])
    for i in rng.choice(len(blocks), size=count, replace=False):
        z, y, x = blocks[i]
        box = (z, slice(y, y + b), slice(x, x + b))
        validation[box] = targets[box]
    held = validation != IGNORE
    if len(np.unique(targets[~held & (targets != IGNORE)])) < len(classes):
        validation[held] = IGNORE
    else:
        targets[held] = IGNORE
    return validation
