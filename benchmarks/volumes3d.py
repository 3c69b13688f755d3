"""Objects of a volume: per-slice ids (a series, as before), 3D connected components of the
class mask, and the 3D objects (``Predictor(volume=True)``), side by side on the same
prediction of a synthetic nuclei volume.

Each volume is drawn from a seed: nuclei-like ellipsoids (semi-axes 0.8-1.2 times a radius,
turned in the plane, many placed touching another), imaged with a z step of ``--z-spacing``
pixels, blurred more in z than in the plane, with Poisson noise. Three slices are annotated
from the truth as a person would (``from_instances``: 1 background, 2 nucleus, touching nuclei
parted by a background line); a U-Net is trained for ``--seconds`` on the CPU, and the whole
stack is predicted once. Scores, on the whole volume: 3D object F1 at IoU 0.5
(``scores.object_f1``) and, per true nucleus, the share of its slices that carry its main id
(the found id covering most of it), averaged over nuclei; for reference, the per-slice 2D
objects' F1 scored slice by slice, as the only score they can have.

Usage: .venv/bin/python benchmarks/volumes3d.py [--seconds 60] [--seeds 0 1 2]
"""

import argparse
import time

import numpy as np
import torch
from _common import PLUGIN_THREADS, OtherLoad, machine, table
from scipy import ndimage
from skimage.measure import label

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.objects import ObjectSettings
from napari_unet.engine.predict import Predictor, predict
from napari_unet.engine.scores import object_f1
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.engine.volume_objects import find_volume_objects

NUCLEUS = 2
VOLUMES = {  # seed: (shape, number of nuclei, radius range in pixels)
    0: ((40, 256, 256), 70, (10, 14)),
    1: ((40, 256, 256), 70, (10, 14)),
    2: ((48, 224, 288), 110, (7, 11)),
}


def nuclei_volume(seed: int, z_spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(image uint16, true ids uint32) of a synthetic nuclei volume."""
    shape, count, (low, high) = VOLUMES[seed]
    rng = np.random.default_rng(seed)
    size = np.array([shape[0] * z_spacing, shape[1], shape[2]])  # in pixels
    centres, axes, angles = [], [], []
    while len(centres) < count:
        radius = rng.uniform(low, high)
        semi = radius * rng.uniform(0.8, 1.2, 3)
        if centres and rng.random() < 0.5:  # touching an earlier nucleus
            k = rng.integers(len(centres))
            direction = rng.normal(size=3)
            direction[0] *= 0.5  # mostly side by side, some on top of each other
            direction /= np.linalg.norm(direction)
            centre = centres[k] + direction * (axes[k].mean() + semi.mean()) * 0.92
        else:
            centre = rng.uniform(0, 1, 3) * size
        if ((centre < semi * 0.5) | (centre > size - semi * 0.5)).any():
            continue
        gaps = [
            np.linalg.norm(centre - c) / (a.mean() + semi.mean())
            for c, a in zip(centres, axes, strict=True)
        ]
        if gaps and min(gaps) < 0.85:
            continue
        centres.append(centre)
        axes.append(semi)
        angles.append(rng.uniform(0, np.pi))
    nearest = np.full(shape, np.inf, dtype=np.float32)
    truth = np.zeros(shape, dtype=np.uint32)
    z, y, x = np.indices(shape, dtype=np.float32)
    z *= z_spacing
    for i, (c, a, angle) in enumerate(zip(centres, axes, angles, strict=True), start=1):
        dy, dx = y - c[1], x - c[2]
        u = np.cos(angle) * dy + np.sin(angle) * dx
        v = -np.sin(angle) * dy + np.cos(angle) * dx
        d = ((z - c[0]) / a[0]) ** 2 + (u / a[1]) ** 2 + (v / a[2]) ** 2
        closer = (d <= 1) & (d < nearest)
        truth[closer], nearest[closer] = i, d[closer]
    brightness = np.concatenate([[0.0], rng.uniform(0.5, 1.0, count)]).astype(np.float32)
    texture = ndimage.gaussian_filter(rng.normal(size=shape).astype(np.float32), 2) * 3
    signal = np.where(
        truth > 0,
        brightness[truth] * (1 - 0.35 * np.where(truth > 0, nearest, 0) + 0.1 * texture),
        0,
    )
    signal = ndimage.gaussian_filter(signal + 0.08, (3.0 / z_spacing, 1.2, 1.2))
    image = rng.poisson(np.clip(signal, 0, None) * 80).astype(np.uint16)
    return image, truth.astype(np.uint32)


def annotate(truth: np.ndarray, slices) -> np.ndarray:
    annotations = np.zeros(truth.shape, dtype=np.uint8)
    for z in slices:
        annotations[z] = from_instances(truth[z])
    return annotations


def slices_with_main_id(found: np.ndarray, truth: np.ndarray) -> float:
    """Per true nucleus, the share of its slices holding its main found id; mean over nuclei."""
    shares = []
    for i, box in enumerate(ndimage.find_objects(truth), start=1):
        if box is None:
            continue
        inside = truth[box] == i
        ids = found[box][inside]
        ids = ids[ids > 0]
        if not len(ids):
            shares.append(0.0)
            continue
        main = np.bincount(ids).argmax()
        layers = [(found[box][z][inside[z]] == main).any() for z in range(len(inside))]
        spanned = [inside[z].any() for z in range(len(inside))]
        shares.append(sum(layers) / sum(spanned))
    return float(np.mean(shares))


def per_slice_f1(found: np.ndarray, truth: np.ndarray) -> float:
    scores = [object_f1(f, t) for f, t in zip(found, truth, strict=True) if t.any()]
    return float(np.mean(scores))


def run(seed: int, seconds: float, z_spacing: float, split: float) -> list[list]:
    image, truth = nuclei_volume(seed, z_spacing)
    depth = image.shape[0]
    annotated = [depth // 4, depth // 2, 3 * depth // 4]
    settings = TrainSettings(steps=None, time_limit=seconds, device="cpu", seed=seed)
    trainer = Trainer(image, annotate(truth, annotated), settings=settings)
    with OtherLoad() as load:
        segmenter = _to_end(trainer.run())
    objects = ObjectSettings(split=split)
    series = predict(segmenter, image, instances_of=NUCLEUS, objects=objects, device="cpu")
    started = time.perf_counter()
    predictor = Predictor(
        segmenter,
        image,
        probabilities=True,
        instances_of=NUCLEUS,
        objects=objects,
        volume=True,
        z_spacing=z_spacing,
        device="cpu",
    )
    volume = _to_end(predictor.run())
    took = time.perf_counter() - started
    components = label(series.labels == NUCLEUS)
    start = time.perf_counter()
    probability, mask = volume.probabilities[NUCLEUS - 1], volume.labels == NUCLEUS
    find_volume_objects(probability, mask, objects, z_spacing)
    cut = time.perf_counter() - start
    name = f"seed {seed}: {'x'.join(map(str, image.shape))}, {truth.max()} nuclei"
    rows = []
    for what, found in [
        ("per-slice ids (series, before)", series.instances),
        ("3D connected components of the class mask", components),
        ("**3D objects (volume, new)**", volume.instances),
    ]:
        f1, share = object_f1(found, truth), slices_with_main_id(found, truth)
        rows.append([name, what, f"{f1:.2f}", f"{share:.0%}"])
    if z_spacing <= 2:
        views = three_views(segmenter, image, z_spacing)
        found = find_volume_objects(views, views > 0.5, objects, z_spacing)
        f1, share = object_f1(found, truth), slices_with_main_id(found, truth)
        rows.append(
            [
                name,
                "3D objects, xy + xz + yz views averaged",
                f"{f1:.2f}",
                f"{share:.0%}",
            ]
        )
    f1 = per_slice_f1(series.instances, truth)
    rows.append([name, "per-slice 2D objects, scored slice by slice", f"{f1:.2f}", "–"])
    print(
        f"seed {seed}: {load.describe()} while training; prediction with 3D objects "
        f"{took:.1f} s, of which cutting the objects {cut:.1f} s",
        flush=True,
    )
    return rows


def three_views(segmenter, image: np.ndarray, z_spacing: float) -> np.ndarray:
    """The nucleus probability predicted on xy slices and on xz and yz planes of the volume
    resampled to square voxels (linear), back on the volume's grid, averaged (the orthoplane
    inference of empanada-napari)."""
    depth = image.shape[0]
    total = _probability(segmenter, image).astype(np.float32)
    square = ndimage.zoom(image.astype(np.float32), (z_spacing, 1, 1), order=1)
    back = np.minimum(np.round(np.arange(depth) * z_spacing).astype(int), len(square) - 1)
    for axes in ((1, 0, 2), (2, 0, 1)):
        side = _probability(segmenter, square.transpose(axes))
        total += side.transpose(np.argsort(axes))[back]
    return total / 3


def _probability(segmenter, stack: np.ndarray) -> np.ndarray:
    result = predict(segmenter, stack, labels=False, probabilities=True, device="cpu")
    return result.probabilities[NUCLEUS - 1]


def _to_end(generator):
    """Run a progress generator to its end; its returned value."""
    while True:
        try:
            next(generator)
        except StopIteration as done:
            return done.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=sorted(VOLUMES))
    parser.add_argument("--z-spacing", type=float, default=2.0)
    parser.add_argument("--split", type=float, default=ObjectSettings().split)
    args = parser.parse_args()
    torch.set_num_threads(PLUGIN_THREADS)
    print(machine())
    rows = []
    for seed in args.seeds:
        rows += run(seed, args.seconds, args.z_spacing, args.split)
    print(table(["volume", "output", "3D object F1 @ IoU 0.5", "slices with the main id"], rows))


if __name__ == "__main__":
    main()
