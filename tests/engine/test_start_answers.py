"""Fine-tuning keeps the start model's confident answers where nothing is annotated: which
pixels are kept, the probabilities handed to the trainer, and corrections of one class alone."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.draw import disk

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.errors import UNetError
from napari_unet.engine.losses import start_divergence
from napari_unet.engine.predict import predict
from napari_unet.engine.start_answers import (
    CLEARANCE,
    EDGE,
    kept_pixels,
    merged_note,
    merged_regions,
    start_answers,
)
from napari_unet.engine.train import TrainSettings

from helpers import TINY, train


def two_nuclei() -> np.ndarray:
    """A start model's answer: background (1) with two nuclei (2) of radius 15."""
    answer = np.ones((100, 160), np.uint8)
    answer[disk((50, 40), 15)] = 2
    answer[disk((50, 120), 15)] = 2
    return answer


def test_kept_pixels_leave_annotations_edges_and_contradicted_objects_free():
    answer = two_nuclei()
    labels = np.zeros(answer.shape, np.uint8)
    labels[50, 40] = 1  # the user says the left nucleus is background
    labels[5, 140] = 1
    keep = kept_pixels(answer, labels)
    assert not keep[:, :80][answer[:, :80] == 2].any()  # the whole contradicted nucleus
    assert keep[50, 120] and keep[90, 80]  # the other nucleus' middle, far background
    assert not keep[50, 120 - 15 + EDGE // 2]  # near its edge
    assert not keep[5, 140 - CLEARANCE + 1] and keep[5, 140 - CLEARANCE - EDGE - 2]


def test_an_annotation_agreeing_with_an_object_keeps_its_middle():
    answer = two_nuclei()
    labels = np.zeros(answer.shape, np.uint8)
    labels[50, 120] = 2
    keep = kept_pixels(answer, labels)
    assert keep[50, 40] and not keep[50, 121]
    assert keep[:, 80:][answer[:, 80:] == 2].any()  # the agreeing nucleus beyond the clearance


def test_start_answers_are_probabilities_where_kept_and_zero_elsewhere(trained, image):
    normalised = trained.normalization.for_image(image[None, ..., None])
    images = normalised.apply(image[None, ..., None].astype(np.float32))
    labels = np.zeros((1, *image.shape), np.uint8)
    labels[0, :64] = 1
    answers, merged = start_answers(trained, images, labels, device="cpu")
    assert merged == 0  # background painted only
    assert answers.shape == (1, trained.n_classes, *image.shape)
    total = answers.sum(1)[0]
    assert not total[: 64 + CLEARANCE].any()
    kept = total > 0
    assert kept.mean() > 0.2 and np.allclose(total[kept], 1, atol=1e-4)
    predicted = predict(trained, image, device="cpu").labels
    assert (answers[0].argmax(0)[kept] + 1 == predicted[kept]).mean() > 0.99


def test_a_painted_region_over_two_objects_of_the_start_model_counts_as_merged():
    answer = two_nuclei()
    answer[disk((50, 68), 12)] = 2  # a third nucleus, touching the left one
    answer[:, 55] = 1  # the start model's background line between the touching two
    answer[40:44, 5:9] = 2  # a speck
    objects, _ = ndimage.label(answer == 2)
    painted = np.zeros(answer.shape, bool)
    painted[20:80, 0:85] = True  # one blob over the touching pair (and the speck)
    assert merged_regions(objects, painted) == 1
    painted[:, 54:57] = False  # painted apart: two regions, one nucleus each
    assert merged_regions(objects, painted) == 0
    painted[:] = False
    painted[45:55, 30:50] = True  # a small part of one nucleus, a part of the other
    painted[45:55, 60:75] = True
    assert merged_regions(objects, painted) == 0  # neither nucleus half inside one region
    painted[20:80, 20:150] = True  # all three nuclei in one region
    assert merged_regions(objects, painted) == 1
    assert "2 painted regions each" in merged_note(2) and "1 painted region" in merged_note(1)


def test_start_answers_count_blobs_over_touching_objects(trained, image):
    normalised = trained.normalization.for_image(image[None, ..., None])
    images = normalised.apply(image[None, ..., None].astype(np.float32))
    predicted = predict(trained, image, device="cpu", instances_of=2).instances
    blobs = np.where(predicted > 0, 2, 1).astype(np.uint8)[None]
    _, merged = start_answers(trained, images, blobs, device="cpu")
    touching = merged_regions(predicted, predicted > 0)
    assert merged == touching > 0
    _, merged = start_answers(trained, images, from_instances(predicted)[None])
    assert merged == 0  # each apart, a background line where two touch


def test_the_divergence_is_zero_for_the_start_answers_and_ignores_free_pixels():
    logits = torch.randn(2, 3, 8, 8)
    answers = torch.softmax(logits, 1)[:, :2] / torch.softmax(logits, 1)[:, :2].sum(1, True)
    assert start_divergence(torch.log(answers), answers) == pytest.approx(0, abs=1e-5)
    assert start_divergence(logits, torch.zeros(2, 2, 8, 8)) == 0
    assert start_divergence(logits, answers) > 0
    # answers blended with zeros at the kept region's edge (resampled): zero from themselves
    blended = answers * torch.linspace(0.1, 1, 8)
    assert start_divergence(torch.log(answers), blended) == pytest.approx(0, abs=1e-5)
    assert start_divergence(logits, blended) > 0


def dusty(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, list]:
    """``image`` with three bright 20-pixel squares (dust) in empty places below row 160."""
    empty = ndimage.minimum_filter((truth == 1).astype(np.uint8), size=40)
    ys, xs = np.nonzero(empty[160:])
    image, boxes = image.copy(), []
    for i in (0, len(ys) // 2, len(ys) - 1):
        y, x = ys[i] + 150, xs[i] - 10
        boxes.append((slice(y, y + 20), slice(x, x + 20)))
        image[boxes[-1]] = image.max()
    return image, boxes


def test_background_painted_over_dust_fine_tunes_and_keeps_the_nuclei(trained, image, truth):
    image, boxes = dusty(image, truth)
    before = predict(trained, image, device="cpu").labels
    assert all((before[box] == 2).mean() > 0.25 for box in boxes)
    annotations = np.zeros(image.shape, np.uint8)
    for rows, columns in boxes[:2]:
        annotations[rows.start - 4 : rows.stop + 4, columns.start - 4 : columns.stop + 4] = 1
    settings = TrainSettings(steps=30, device="cpu", **TINY)
    after = predict(train(image, annotations, settings, segmenter=trained), image).labels
    assert all((after[box] == 2).mean() < 0.05 for box in boxes)  # the third one too
    nuclei = before == 2
    assert ((after == 2) & nuclei).sum() > 0.8 * nuclei.sum()
    assert abs(int((after == 2).sum()) - int(nuclei.sum())) < 0.15 * nuclei.sum()


def test_corrections_of_one_class_need_the_start_answers(trained, image):
    annotations = np.zeros(image.shape, np.uint8)
    annotations[200:240, 200:240] = 1
    settings = TrainSettings(steps=2, device="cpu", keep_start=0, **TINY)
    with pytest.raises(UNetError, match="only id 1 is annotated"):
        train(image, annotations, settings, segmenter=trained)
    with pytest.raises(UNetError, match="only id 1 is annotated"):
        train(image, annotations, TrainSettings(steps=2, **TINY))
