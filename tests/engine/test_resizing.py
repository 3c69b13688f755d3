"""Resizing slices and their annotations for a model made for another object size: shapes,
values, and thin annotation strokes that survive shrinking."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.resizing import resize, resize_annotations, scaled_shape


def test_scaled_shapes_round_and_keep_a_pixel():
    assert scaled_shape((512, 512), 0.5) == (256, 256)
    assert scaled_shape((100, 60), 2.0) == (200, 120)
    assert scaled_shape((101, 203), 0.25) == (25, 51)
    assert scaled_shape((3, 2), 0.25) == (1, 1)


def test_resize_gives_the_shape_asked_for_with_or_without_a_batch_axis():
    data = torch.rand(2, 30, 50)
    assert resize(data, (60, 100)).shape == (2, 60, 100)
    assert resize(data, (15, 25)).shape == (2, 15, 25)
    batch = torch.rand(3, 1, 30, 50)
    assert resize(batch, (45, 20)).shape == (3, 1, 45, 20)
    assert resize(data, (30, 50)) is data  # nothing to do


def test_resize_keeps_values_in_range_and_constants_constant():
    constant = torch.full((1, 40, 40), 7.0)
    for shape in [(10, 10), (80, 80), (23, 57)]:
        assert torch.allclose(resize(constant, shape), constant.new_full((1, *shape), 7.0))
    ramp = torch.linspace(0, 1, 64).repeat(1, 64, 1)  # (1, 64, 64), rising along x
    for shape in [(32, 32), (128, 128)]:
        out = resize(ramp, shape)
        assert out.min() >= 0 and out.max() <= 1
        assert (out[0].diff(dim=1) >= 0).all()  # still rising
        assert torch.allclose(out[0, :, 0], out[0, 0, 0])  # still constant along y


def test_shrinking_smooths_first():
    # a 1-pixel checkerboard halved: without smoothing, sampling would alias it to 0s or 1s
    y, x = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    checks = ((y + x) % 2).float()[None]
    half = resize(checks, (32, 32))
    assert torch.allclose(half, torch.full_like(half, 0.5), atol=0.1)


def test_growing_then_shrinking_gives_the_slice_back():
    y, x = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 40), indexing="ij")
    smooth = torch.sin(3 * y + 2 * x)[None]
    back = resize(resize(smooth, (96, 80)), (48, 40))
    assert (back - smooth).abs().max() < 0.05


def stroke(shape=(1, 64, 64), row=33) -> np.ndarray:
    """A horizontal stroke one pixel wide, of id 2, on unannotated ground."""
    labels = np.zeros(shape, np.uint8)
    labels[:, row, 5:60] = 2
    return labels


@pytest.mark.parametrize("factor", [0.5, 0.25])
def test_a_one_pixel_stroke_survives_shrinking(factor):
    for row in (32, 33, 34, 35):  # whichever pixel row of the new grid it falls in
        labels = stroke(row=row)
        out = resize_annotations(labels, factor)
        assert out.shape == (1, round(64 * factor), round(64 * factor))
        assert set(np.unique(out)) == {0, 2}
        rows = np.nonzero((out[0] == 2).any(axis=1))[0]
        assert len(rows) == 1 and abs(rows[0] - row * factor) <= 1
        # along the stroke, nearly every new pixel is kept
        assert (out[0, rows[0]] == 2).sum() >= 55 * factor - 2


@pytest.mark.parametrize("factor", [0.5, 0.25])
def test_a_vertical_one_pixel_stroke_survives_too(factor):
    labels = np.zeros((1, 64, 64), np.uint8)
    labels[0, 5:60, 21] = 2
    out = resize_annotations(labels, factor)
    columns = np.nonzero((out[0] == 2).any(axis=0))[0]
    assert len(columns) == 1 and (out[0, :, columns[0]] == 2).sum() >= 55 * factor - 2


def test_shrinking_keeps_ids_and_leaves_the_unannotated_ground_unannotated():
    labels = np.zeros((2, 96, 96), np.uint8)
    labels[0, 8:40, 8:40] = 1
    labels[0, 50:90, 50:90] = 3
    labels[1, 10:30, 60:90] = 2
    out = resize_annotations(labels, 0.5)
    assert out.shape == (2, 48, 48) and out.dtype == np.uint8
    assert set(np.unique(out[0])) == {0, 1, 3} and set(np.unique(out[1])) == {0, 2}
    assert (out[0, 6:18, 6:18] == 1).all() and (out[0, 27:43, 27:43] == 3).all()
    assert (out[1, 6:14, 31:44] == 2).all()
    # far from every annotation, nothing becomes annotated
    assert not out[0, 22:24].any() and not out[0, :, 22:24].any()
    assert not out[1, 20:].any() and not out[1, :, :28].any()
    # the areas keep about their share of the slice
    for i in (1, 3):
        assert (out[0] == i).mean() == pytest.approx((labels[0] == i).mean(), rel=0.15)


def test_large_ids_and_their_type_are_kept():
    labels = np.zeros((1, 40, 40), np.uint16)
    labels[0, :20] = 300
    labels[0, 20:] = 1
    out = resize_annotations(labels, 0.5)
    assert out.dtype == np.uint16 and set(np.unique(out)) == {1, 300}


def test_growing_repeats_each_pixel():
    labels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = resize_annotations(labels, 2.0)
    assert np.array_equal(out, labels.repeat(2, axis=1).repeat(2, axis=2))
    out = resize_annotations(labels, 3.0)
    assert np.array_equal(out, labels.repeat(3, axis=1).repeat(3, axis=2))
    grown = resize_annotations(stroke(), 1.5)
    assert grown.shape == (1, 96, 96) and set(np.unique(grown)) == {0, 2}
    assert (grown == 2).sum() == pytest.approx(1.5 * 1.5 * (stroke() == 2).sum(), rel=0.4)


def test_nothing_annotated_stays_nothing_at_the_new_shape():
    out = resize_annotations(np.zeros((2, 10, 14), np.uint8), 0.5)
    assert out.shape == (2, 5, 7) and out.dtype == np.uint8 and not out.any()


@pytest.mark.parametrize("factor", [0.5, 0.45, 0.29, 0.25])
def test_the_line_between_touching_objects_survives_shrinking(factor):
    instances = np.zeros((1, 120, 120), np.int32)
    instances[0, 20:80, 10:60] = 1
    instances[0, 20:80, 60:110] = 2  # touching along a column
    instances[0, 80:115, 10:45] = 3  # touching the first along a row
    labels = from_instances(instances)
    out = resize_annotations(labels, factor)
    _, count = ndimage.label(out[0] == 2)
    assert count == 3
    areas = np.bincount(ndimage.label(out[0] == 2)[0].ravel())[1:] / factor**2
    assert areas.min() > 0.7 * (instances == 3).sum()  # a line, not an erosion


def test_only_objects_apart_are_kept_apart_when_shrinking():
    labels = np.ones((1, 120, 120), np.uint8)
    labels[0, 20:100, 20:100] = 2
    labels[0, 20:57, 58:62] = labels[0, 61:100, 58:62] = 1  # clefts: one object, a waist
    labels[0, 100:115, 20:100] = 3  # another class, touching: classes need no line
    out = resize_annotations(labels, 0.3)
    assert ndimage.label(out[0] == 2)[1] == 1
    assert (out[0] == 2).sum() / 0.3**2 > 0.9 * (labels == 2).sum(), "no object cut short"
    touching = (out[0, 1:] == 3) & (out[0, :-1] == 2)
    assert touching.any(), "the two classes still touch"


@pytest.mark.parametrize("factor", [0.5, 0.45, 0.3])
def test_a_thin_object_beside_another_is_not_cut_away(factor):
    instances = np.zeros((1, 120, 120), np.int32)
    instances[0, 10:110, 20:80] = 1
    instances[0, 10:110, 12:20] = 2  # a thin arm along the first: a line between them
    labels = from_instances(instances)
    out = resize_annotations(labels, factor)
    regions, count = ndimage.label(out[0] == 2)
    assert count == 2, "two objects, the thin one in one piece"
    thin = np.bincount(regions.ravel())[1:].min() / factor**2
    assert thin > 0.5 * (labels == 2)[0, :, :20].sum()
