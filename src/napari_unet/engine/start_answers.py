"""What the model being fine-tuned already answers with confidence where the user annotated
nothing, so that fine-tuning changes the model where the user corrected it and keeps it
elsewhere (as "learning without forgetting" does).

Fine-tuning on corrections alone (background painted over a false nucleus, one missed nucleus
filled in) tells the network nothing about the rest of the image, and a few dozen steps on
those pixels can erase what it knew there. The trainer therefore also pulls the network
towards the start model's class probabilities on the pixels this module keeps: those where the
start model is sure, away from the user's annotations, outside any object the user
contradicted, and away from the start model's own class edges. So the network keeps what the
start model knows (where the nuclei are, and that the background is empty) while the user's
annotations teach it how to draw edges (an outline one pixel tighter reaches every nucleus).
"""

import dataclasses

import numpy as np
from scipy import ndimage

from .annotations import contacts
from .images import Normalization
from .predict import predict
from .segmenter import Segmenter

SURE = 0.5
"""Kept where the start model's uncertainty (1 - the margin of its two best classes) is
below this: the best class at least 0.5 ahead of the next."""
CLEARANCE = 8
"""Pixels this close to an annotation are left to the annotation (its object may be wider)."""
EDGE = 4
"""Pixels this close to an edge between the start model's classes are left free."""


def start_answers(
    start: Segmenter, images: np.ndarray, labels: np.ndarray, device: str = "auto"
) -> np.ndarray:
    """(N, K, Y, X) float32 class probabilities of the ``start`` model on the normalised
    (N, Y, X, C) ``images``, zero where they are not kept (see the module); ``labels`` are the
    (N, Y, X) annotation ids of the same slices (0 = not annotated)."""
    channels = images.shape[-1]
    fixed = Normalization(mode="fixed", low=[0.0] * channels, high=[1.0] * channels)
    model = dataclasses.replace(start, normalization=fixed)
    result = predict(
        model,
        images,
        channel_axis=3,
        labels=True,
        probabilities=True,
        uncertainty=True,
        device=device,
    )
    probabilities = np.ascontiguousarray(np.moveaxis(result.probabilities, 0, 1), np.float32)
    for z in range(len(images)):
        keep = kept_pixels(result.labels[z], labels[z]) & (result.uncertainty[z] < SURE)
        probabilities[z][:, ~keep] = 0
    return probabilities


def kept_pixels(answer: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Where the start model's ``answer`` (class ids of a (Y, X) slice) may be kept: not
    within CLEARANCE of an annotated pixel nor EDGE of a class edge of ``answer``, and not in
    an object (a connected region of one class id >= 2) any pixel of which the user
    annotated with another id."""
    annotated = labels > 0
    edges = contacts(answer, np.ones(answer.shape, bool))
    keep = ~ndimage.binary_dilation(annotated, iterations=CLEARANCE)
    keep &= ~ndimage.binary_dilation(edges, iterations=EDGE)
    for class_id in np.unique(answer[answer >= 2]):
        objects, _ = ndimage.label(answer == class_id)
        contradicted = np.unique(objects[annotated & (labels != class_id) & (objects > 0)])
        keep &= ~np.isin(objects, contradicted[contradicted > 0])
    return keep
