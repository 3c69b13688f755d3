"""The U-Net paper's weighted cross-entropy and its weight maps."""

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

IGNORE = -1


def class_balance(counts: dict[int, int], n_classes: int, limit: float = 10.0) -> np.ndarray:
    """Weight per class index, inversely proportional to its annotated frequency, mean 1."""
    freq = np.array([counts.get(i + 1, 0) for i in range(n_classes)], dtype=np.float64)
    present = freq > 0
    weights = np.zeros(n_classes)
    weights[present] = 1.0 / freq[present]
    weights[present] *= present.sum() / weights[present].sum()
    return np.clip(weights, 0.0, limit).astype(np.float32)


def border_weights(annotations: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` for one (Y, X) annotated slice.

    Objects are the connected components of each class id >= 2; ``d1``/``d2`` are the distances
    to the nearest and second-nearest object, computed only near each object, where the term
    is not negligible.
    """
    d1 = np.full(annotations.shape, np.inf, dtype=np.float32)
    d2 = np.full(annotations.shape, np.inf, dtype=np.float32)
    reach = int(np.ceil(sigma * np.sqrt(2 * np.log(max(100 * w0, 2.0))))) + 1
    for class_id in np.unique(annotations[annotations >= 2]):
        objects, _ = ndimage.label(annotations == class_id)
        for index, box in enumerate(ndimage.find_objects(objects), start=1):
            window = tuple(
                slice(max(s.start - reach, 0), min(s.stop + reach, n))
                for s, n in zip(box, annotations.shape, strict=True)
            )
            distance = ndimage.distance_transform_edt(objects[window] != index)
            near, second = d1[window], d2[window]
            second[...] = np.minimum(second, np.maximum(near, distance))
            near[...] = np.minimum(near, distance)
    return (w0 * np.exp(-((d1 + d2) ** 2) / (2 * sigma**2))).astype(np.float32)


def weight_map(
    annotations: np.ndarray,
    balance: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
) -> np.ndarray:
    """Per-pixel loss weights of a (Y, X) slice: class balance plus the border term (w0 > 0)."""
    weights = np.zeros(annotations.shape, dtype=np.float32)
    annotated = annotations > 0
    weights[annotated] = balance[annotations[annotated] - 1]
    if w0 > 0:
        weights += border_weights(annotations, w0, sigma) * annotated
    return weights


def weighted_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Pixel-wise softmax cross-entropy times ``weights``, averaged over annotated pixels."""
    loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="none")
    annotated = (targets != IGNORE).sum().clamp(min=1)
    return (loss * weights).sum() / annotated


def start_divergence(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """KL divergence of the network's class probabilities from the start model's kept
    ``answers`` (B, K, Y, X; zero where not kept, K the start model's classes), averaged over
    the kept pixels. Resampling blends kept answers with zeros at the kept region's edge: a
    pixel whose answers sum to s < 1 counts s times the divergence from them renormalised
    (never negative)."""
    log_q = F.log_softmax(logits.float(), 1)[:, : answers.shape[1]]
    p = answers.float()
    mass = p.sum(1)
    divergence = (torch.xlogy(p, p) - p * log_q).sum(1) - torch.xlogy(mass, mass)
    return divergence.sum() / mass.sum().clamp(min=1)
