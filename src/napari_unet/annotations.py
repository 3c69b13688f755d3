"""The annotation convention: 0 = not annotated, 1 = background, 2, 3, ... = classes."""

import numpy as np

from .errors import UNetError

UNANNOTATED = 0
BACKGROUND = 1
MAX_CLASSES = 64


def default_class_names(n_classes: int) -> list[str]:
    """Names for annotation ids 1..n: "background", then "class 2", "class 3", ..."""
    return ["background"] + [f"class {i}" for i in range(2, n_classes + 1)]


def annotated_slices(annotations) -> list[int]:
    """Indices of the slices of a (Z, Y, X) annotation array holding any annotation."""
    return [z for z in range(annotations.shape[0]) if np.asarray(annotations[z]).any()]


def count_classes(annotations: np.ndarray) -> dict[int, int]:
    """Annotated pixels per id (id 0 left out)."""
    ids, counts = np.unique(np.asarray(annotations), return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts, strict=True) if i > UNANNOTATED}


def check_annotations(annotations: np.ndarray, n_classes: int | None = None) -> dict[int, int]:
    """Check the ids of loaded annotations; return the pixel count per id.

    With ``n_classes`` (a model being fine-tuned) ids up to it are allowed; without, the ids
    must run 1, 2, ... without gaps.
    """
    dtype = annotations.dtype
    if not np.issubdtype(dtype, np.integer):
        raise UNetError(
            f"annotations must hold integer ids (0 = none, 1 = background, 2.. = classes), "
            f"not {dtype}"
        )
    if annotations.size and annotations.min() < 0:
        raise UNetError("annotations hold negative ids; use 0 = none, 1 = background, 2.. ")
    counts = count_classes(annotations)
    if not counts:
        raise UNetError("no pixel is annotated: paint background (1) and at least one class (2)")
    ids = sorted(counts)
    if ids[-1] > MAX_CLASSES:
        raise UNetError(
            f"annotation ids go up to {ids[-1]}: is this an instance labels layer? Annotations "
            f"use 1 = background and 2.. = classes (at most {MAX_CLASSES})"
        )
    if n_classes is not None:
        if ids[-1] > n_classes:
            raise UNetError(
                f"the model knows ids 1..{n_classes} but the annotations use id {ids[-1]}; "
                "train a new model to add classes"
            )
    else:
        missing = sorted(set(range(1, ids[-1] + 1)) - set(ids))
        if missing:
            raise UNetError(
                f"annotation ids skip {', '.join(map(str, missing))}: number the classes "
                "1 (background), 2, 3, ... without gaps"
            )
    if len(ids) < 2:
        raise UNetError(
            f"only id {ids[0]} is annotated: annotate background (1) and at least one class (2)"
        )
    return counts


def check_shapes(image_shape: tuple[int, ...], annotation_shape: tuple[int, ...]) -> None:
    """Annotations must have the image's spatial shape."""
    if tuple(image_shape) != tuple(annotation_shape):
        raise UNetError(
            f"annotations have shape {tuple(annotation_shape)} but the image (without channels) "
            f"has shape {tuple(image_shape)}; they must match"
        )


def from_instances(instances: np.ndarray, class_id: int = 2) -> np.ndarray:
    """Full annotations from (Y, X) instance labels: objects get ``class_id``, the rest and
    the pixels where two objects touch are background, as in the U-Net paper."""
    annotations = np.where(instances > 0, class_id, BACKGROUND).astype(np.uint8)
    padded = np.pad(instances, 1)
    centre = padded[1:-1, 1:-1]
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        neighbour = padded[dy : dy + centre.shape[0], dx : dx + centre.shape[1]]
        annotations[(centre > 0) & (neighbour > 0) & (neighbour != centre)] = BACKGROUND
    return annotations
