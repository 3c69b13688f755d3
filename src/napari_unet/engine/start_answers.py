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

The same prediction counts the painted regions that hold several of the start model's objects
(touching nuclei painted as one blob), so that the user can be told before the network learns
to merge them.
"""

import dataclasses

import numpy as np
from scipy import ndimage

from .annotations import contacts
from .images import Normalization
from .objects import find_objects
from .predict import predict
from .segmenter import Segmenter

SURE = 0.5
"""Kept where the start model's uncertainty (1 - the margin of its two best classes) is
below this: the best class at least 0.5 ahead of the next."""
CLEARANCE = 8
"""Pixels this close to an annotation are left to the annotation (its object may be wider)."""
EDGE = 4
"""Pixels this close to an edge between the start model's classes are left free."""
OBJECT_PIXELS = 30
"""The start model's objects smaller than this are specks, not objects the user merged."""


def start_answers(
    start: Segmenter, images: np.ndarray, labels: np.ndarray, device: str = "auto"
) -> tuple[np.ndarray, int]:
    """(N, K, Y, X) float32 class probabilities of the ``start`` model on the normalised
    (N, Y, X, C) ``images``, zero where they are not kept (see the module), and how many
    painted regions merge its objects (:func:`merged_regions`); ``labels`` are the (N, Y, X)
    annotation ids of the same slices (0 = not annotated)."""
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
    merged = 0
    for z in range(len(images)):
        painted = labels[z][(labels[z] >= 2) & (labels[z] <= probabilities.shape[1])]
        for class_id in np.unique(painted):  # a class new to the start model has no objects
            answer = result.labels[z] == class_id
            objects = find_objects(probabilities[z, class_id - 1], answer)
            merged += merged_regions(objects, labels[z] == class_id)
        keep = kept_pixels(result.labels[z], labels[z]) & (result.uncertainty[z] < SURE)
        probabilities[z][:, ~keep] = 0
    return probabilities, merged


def merged_regions(objects: np.ndarray, painted: np.ndarray) -> int:
    """How many connected regions of ``painted`` (a (Y, X) mask of one annotated class) each
    hold two or more of the start model's ``objects`` of that class (ids > 0; those of at
    least OBJECT_PIXELS, at least half inside): touching objects painted as one, which
    fine-tuning then learns to merge, or objects of the start model the user meant to merge."""
    regions, n_regions = ndimage.label(painted)
    n_objects = int(objects.max())
    if n_objects < 2 or n_regions == 0:
        return 0
    sizes = np.bincount(objects.ravel(), minlength=n_objects + 1)[1:]
    overlap = np.bincount(
        objects.ravel().astype(np.int64) * (n_regions + 1) + regions.ravel(),
        minlength=(n_objects + 1) * (n_regions + 1),
    ).reshape(n_objects + 1, n_regions + 1)[1:, 1:]
    held = (2 * overlap.max(axis=1) >= sizes) & (sizes >= OBJECT_PIXELS)
    per_region = np.bincount(overlap.argmax(axis=1)[held], minlength=n_regions)
    return int((per_region >= 2).sum())


def merged_note(count: int) -> str:
    """What to tell a user whose annotations merge ``count`` times objects the start model
    keeps apart (see :func:`merged_regions`)."""
    regions = "1 painted region covers" if count == 1 else f"{count} painted regions each cover"
    return (
        f"{regions} several objects that the model keeps apart: painted as one, touching "
        "objects are learned as one."
    )


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
