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


def check_annotations(
    annotations: np.ndarray, n_classes: int | None = None, alone: bool = False
) -> dict[int, int]:
    """Check the ids of loaded annotations; return the pixel count per id.

    With ``n_classes`` (a model being fine-tuned) ids up to it are allowed, and new classes
    after it (n_classes + 1, ... without gaps) grow the model; without, the ids must run
    1, 2, ... without gaps. At least two ids must be annotated, unless ``alone`` (fine-tuning
    that keeps the start model's answers elsewhere, which supply the other classes).
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
        missing = sorted(set(range(n_classes + 1, ids[-1] + 1)) - set(ids))
        if missing:
            raise UNetError(
                f"the model knows ids 1..{n_classes}; new classes follow them without gaps, "
                f"but id {', '.join(map(str, missing))} is not annotated"
            )
    else:
        missing = sorted(set(range(1, ids[-1] + 1)) - set(ids))
        if missing:
            fixes = []
            if missing[0] == BACKGROUND:
                fixes.append("paint some background (1) too")
            if missing[-1] > BACKGROUND:
                fixes.append("number the classes 2, 3, ... without gaps")
            raise UNetError(
                f"annotation ids skip {', '.join(map(str, missing))}: {', and '.join(fixes)}"
            )
    if len(ids) < 2 and not (alone and n_classes is not None):
        raise UNetError(
            f"only id {ids[0]} is annotated: annotate background (1) and at least one class (2)"
        )
    return counts


def check_shapes(image_shape: tuple[int, ...], annotation_shape: tuple[int, ...]) -> None:
    """Annotations must have the image's spatial shape."""
    image_shape, annotation_shape = tuple(image_shape), tuple(annotation_shape)
    if image_shape != annotation_shape:
        hint = ""
        if image_shape[:-1] == annotation_shape:
            hint = " (if its last axis holds channels, as in RGB, give it as the channel axis)"
        elif image_shape[1:] == annotation_shape:
            hint = " (if its first axis holds channels, give it as the channel axis)"
        raise UNetError(
            f"annotations have shape {annotation_shape} but the image (without channels) "
            f"has shape {image_shape}; they must match{hint}"
        )


def from_instances(instances: np.ndarray, class_id: int = 2) -> np.ndarray:
    """Full annotations from instance labels (0 = background, 1, 2, ... = objects): objects get
    ``class_id``, the rest and the pixels where two objects touch are background, as in the
    U-Net paper. (Y, X) or (Z, Y, X)."""
    instances = _integer_ids(instances, "instance labels")
    annotations = np.where(instances > 0, _check_class_id(class_id), BACKGROUND).astype(np.uint8)
    annotations[contacts(instances, instances >= 1)] = BACKGROUND
    return annotations


def objects_to_classes(labels: np.ndarray, class_id: int = 2) -> np.ndarray:
    """Class annotations from objects painted each with its own id.

    ``labels`` holds 0 = not annotated, 1 = background, 2, 3, ... = one id per object, all of
    one class; 0 and 1 are kept, objects become ``class_id``, and where two objects touch their
    contact pixels become background, so that each object stays a connected component of its
    class (the loss's border weights then see the gap). (Y, X) or (Z, Y, X).
    """
    labels = _integer_ids(labels, "object labels")
    annotations = np.where(labels > BACKGROUND, _check_class_id(class_id), labels).astype(np.uint8)
    annotations[contacts(labels, labels >= 2)] = BACKGROUND
    return annotations


def contacts(ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour in the same slice (the last two axes) holding another id, both
    ``valid``: both sides of every contact."""
    found = np.zeros(ids.shape, dtype=bool)
    for axis in (ids.ndim - 2, ids.ndim - 1):
        lower = tuple(slice(None, -1) if i == axis else slice(None) for i in range(ids.ndim))
        upper = tuple(slice(1, None) if i == axis else slice(None) for i in range(ids.ndim))
        contact = valid[lower] & valid[upper] & (ids[lower] != ids[upper])
        found[lower] |= contact
        found[upper] |= contact
    return found


def _integer_ids(ids, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise UNetError(f"{what} must hold integer ids, not {ids.dtype}")
    if ids.ndim not in (2, 3):
        raise UNetError(f"{what} must be (Y, X) or (Z, Y, X), not of shape {ids.shape}")
    if ids.size and ids.min() < 0:
        raise UNetError(f"{what} hold negative ids; ids must be 0 or more")
    return ids


def _check_class_id(class_id: int) -> int:
    if not 2 <= class_id <= MAX_CLASSES:
        raise UNetError(f"objects need a class id 2..{MAX_CLASSES}, not {class_id}")
    return class_id
