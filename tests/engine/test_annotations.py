"""Annotations: their checks before training, and objects painted each with their own id
turned into class annotations with gaps between them."""

import numpy as np
import pytest

from napari_unet.engine.annotations import from_instances, objects_to_classes
from napari_unet.engine.errors import UNetError
from napari_unet.engine.losses import border_weights
from napari_unet.samples import nuclei_instances

from helpers import train


def two_touching_squares(dtype=np.uint16, ids=(2, 3)) -> np.ndarray:
    """0 = not annotated on the left, 1 = background, two objects touching at column 20."""
    labels = np.ones((30, 40), dtype=dtype)
    labels[:, :4] = 0
    labels[10:20, 10:20] = ids[0]
    labels[10:20, 20:30] = ids[1]
    return labels


def test_touching_objects_are_separated_by_background():
    classes = objects_to_classes(two_touching_squares())
    assert classes.dtype == np.uint8
    assert (classes[10:20, 19:21] == 1).all()
    assert (classes[10:20, 10:19] == 2).all() and (classes[10:20, 21:30] == 2).all()
    assert set(np.unique(classes)) == {0, 1, 2}


def test_unannotated_and_background_are_kept():
    labels = two_touching_squares()
    classes = objects_to_classes(labels)
    assert (classes[labels == 0] == 0).all()
    assert (classes[labels == 1] == 1).all()


def test_objects_touching_background_or_unannotated_keep_their_edge():
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[2:8, 2:5] = 1
    labels[2:8, 5:8] = 4
    classes = objects_to_classes(labels)
    assert (classes[2:8, 5:8] == 2).all()


def test_class_id_is_applied():
    classes = objects_to_classes(two_touching_squares(), class_id=5)
    assert set(np.unique(classes)) == {0, 1, 5}


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.uint32, np.int64])
def test_any_integer_dtype(dtype):
    expected = objects_to_classes(two_touching_squares())
    assert (objects_to_classes(two_touching_squares(dtype)) == expected).all()


def test_large_object_ids():
    labels = two_touching_squares(np.uint32, ids=(2**32 - 1, 2**32 - 2))
    assert (objects_to_classes(labels) == objects_to_classes(two_touching_squares())).all()


def test_stacks_are_converted_slice_by_slice():
    one = two_touching_squares()
    other = np.ones_like(one)
    other[5:25, 10:30] = 7  # one object spanning the contact of the first slice
    stack = np.stack([one, other, one])
    classes = objects_to_classes(stack)
    assert classes.shape == stack.shape
    assert (classes[0] == objects_to_classes(one)).all()
    assert (classes[1][5:25, 10:30] == 2).all()  # no gap across slices
    assert (classes[2] == classes[0]).all()


def test_painted_objects_give_the_same_annotations_as_instances():
    instances = nuclei_instances()
    painted = np.where(instances > 0, instances.astype(np.uint32) + 1, 1)
    assert (objects_to_classes(painted) == from_instances(instances)).all()


def test_border_weights_are_high_in_the_gap_between_converted_objects():
    classes = objects_to_classes(two_touching_squares())
    weights = border_weights(classes)
    assert weights[15, 19:21].min() > 5
    assert weights[15, 19:21].min() >= weights[15].max() - 1e-6
    assert weights[15, 38] < 0.01
    assert border_weights(np.where(two_touching_squares() > 1, 2, 1))[15, 19:21].max() < 1


@pytest.mark.parametrize(
    ("labels", "class_id", "message"),
    [
        (np.ones((4, 4), dtype=np.float32), 2, "integer ids"),
        (-np.ones((4, 4), dtype=np.int16), 2, "negative"),
        (np.ones(4, dtype=np.uint8), 2, r"\(Y, X\)"),
        (np.ones((4, 4), dtype=np.uint8), 1, "class id"),
        (np.ones((4, 4), dtype=np.uint8), 65, "class id"),
    ],
)
def test_bad_input(labels, class_id, message):
    with pytest.raises(UNetError, match=message):
        objects_to_classes(labels, class_id=class_id)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a * 0, "no pixel is annotated"),
        (lambda a: np.where(a == 2, 0, a), "only id 1 is annotated"),
        (lambda a: np.where(a == 2, 3, a), "skip 2"),
        (lambda a: a.astype(np.int16) - 2, "negative ids"),
        (lambda a: a.astype(np.float32), "integer ids"),
        (lambda a: np.where(a == 2, 183, a).astype(np.uint16), "instance labels"),
        (lambda a: a[:, :500], r"shape \(512, 500\).*\(512, 512\)"),
        (lambda a: a[None], "must match"),
    ],
)
def test_bad_annotations(image, annotations, edit, message):
    with pytest.raises(UNetError, match=message):
        train(image, edit(annotations))


def test_an_rgb_image_without_its_channel_axis_gets_a_hint(image, annotations):
    rgb = np.repeat(image[..., None], 3, axis=-1)
    with pytest.raises(UNetError, match="if its last axis holds channels, as in RGB, give it"):
        train(rgb, annotations)
    with pytest.raises(UNetError, match="if its first axis holds channels, give it"):
        train(np.moveaxis(rgb, -1, 0), annotations)
