"""Time to a useful model: the U-Net after 30, 60 and 120 s of CPU training vs. a random forest.

The DSB2018 nuclei image shipped with the package (the pixels of ../shared/data/dsb2018-nuclei)
is annotated on rows 0-127 (napari_unet.annotations.from_instances: 1 = background,
2 = nucleus, touching nuclei separated by a background line), or with a few scribbled strokes
per class inside those rows. Each U-Net is a separate training round with that time limit,
as a user who stops there gets it (the best weights by validation); it is scored on rows
160-511, never annotated: pixel Dice and IoU of the nucleus class, and object F1 at IoU 0.5
(connected components of the nucleus class vs. the true instances). The peer is
scikit-image's random-forest pixel classifier (fit_segmenter on multiscale_basic_features) on
the same annotations, timed from features to prediction.

Torch uses one thread fewer than the cores, as the plugin does (--threads to change). A U-Net
run during which other processes needed more than the cores left free is repeated once
(--retries) and the quieter run kept: OpenMP threads that share a core with a busy process
slow training several times over.

Usage: .venv/bin/python benchmarks/time_to_model.py [--budgets 30 60 120] [--set name=value]
"""

import argparse
import dataclasses
import os
import time

import numpy as np
import torch
from _common import PLUGIN_THREADS, QUIET, OtherLoad, machine, table
from scipy import ndimage
from skimage.feature import multiscale_basic_features
from skimage.future import fit_segmenter, predict_segmenter
from skimage.measure import label as connected_components
from sklearn.ensemble import RandomForestClassifier

from napari_unet.annotations import BACKGROUND
from napari_unet.predict import predict
from napari_unet.samples import nuclei, nuclei_annotations, nuclei_instances
from napari_unet.train import Trainer, TrainSettings

ANNOTATED_ROWS = 128
SCORED_ROWS = slice(160, None)
NUCLEUS = 2


def scribbles(annotations: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """A few 3-pixel-wide strokes per class inside the annotated rows: one across each of six
    nuclei spread over the strip, and four 150-pixel strokes through the background."""
    out = np.zeros_like(annotations)
    strip = instances[:ANNOTATED_ROWS]
    ids = [i for i in np.unique(strip) if i and i not in np.unique(instances[ANNOTATED_ROWS:])]
    centres = ndimage.center_of_mass(strip > 0, strip, ids)
    chosen = sorted(zip(ids, centres, strict=True), key=lambda item: item[1][1])
    inner = ndimage.binary_erosion(annotations == NUCLEUS, iterations=2)
    for i, (cy, _) in [chosen[k] for k in np.linspace(0, len(chosen) - 1, 6).astype(int)]:
        rows = slice(int(cy) - 1, int(cy) + 2)
        out[rows][(instances[rows] == i) & inner[rows]] = NUCLEUS
    background = ndimage.binary_erosion(annotations == BACKGROUND, iterations=3)
    for row, start in ((16, 40), (50, 300), (84, 120), (112, 330)):
        box = (slice(row - 1, row + 2), slice(start, start + 150))
        out[box][background[box]] = BACKGROUND
    return out


def scores(labels: np.ndarray, objects: np.ndarray, instances: np.ndarray) -> dict:
    """Pixel Dice and IoU of the nucleus class and object F1 at IoU 0.5, on the scored rows."""
    guess = labels[SCORED_ROWS] == NUCLEUS
    truth = instances[SCORED_ROWS] > 0
    overlap = (guess & truth).sum()
    dice = 2 * overlap / (guess.sum() + truth.sum())
    iou = overlap / (guess | truth).sum()
    found, true = objects[SCORED_ROWS].ravel(), instances[SCORED_ROWS].ravel()
    both = (found > 0) & (true > 0)
    stride = int(true.max()) + 1
    pairs, shared = np.unique(
        found[both].astype(np.int64) * stride + true[both], return_counts=True
    )
    union = (
        np.bincount(found)[pairs // stride] + np.bincount(true, minlength=stride)[pairs % stride]
    ) - shared
    matched = int((shared / union > 0.5).sum())
    n_found, n_true = len(np.unique(found[found > 0])), len(np.unique(true[true > 0]))
    return {
        "dice": dice,
        "iou": iou,
        "f1": 2 * matched / max(n_found + n_true, 1),
        "objects": f"{n_found}/{n_true}",
    }


def train_unet(image, annotations, settings: TrainSettings) -> tuple:
    """One training round: the segmenter, the steps done, the step whose weights were kept
    (the last improvement the trainer reported) and the other processes' load."""
    run = Trainer(image, annotations, settings=settings).run()
    steps = kept = 0
    with OtherLoad() as load:
        while True:
            try:
                progress = next(run)
            except StopIteration as done:
                return done.value, steps, kept, load
            steps = progress.step
            if progress.improved:
                kept = steps


def forest(image, annotations, **features) -> tuple[np.ndarray, float]:
    """scikit-image's trainable segmentation, as in its gallery example; labels and seconds."""
    start = time.perf_counter()
    feature_map = multiscale_basic_features(image.astype(np.float32), **features)
    classifier = RandomForestClassifier(
        n_estimators=50, n_jobs=-1, max_depth=10, max_samples=0.05, random_state=0
    )
    classifier = fit_segmenter(annotations, feature_map, classifier)
    labels = predict_segmenter(feature_map, classifier)
    return labels, time.perf_counter() - start


def parse_setting(text: str) -> tuple[str, object]:
    """``name=value`` for a TrainSettings field: an int, a float, true/false or a string."""
    name, _, value = text.partition("=")
    if name not in {f.name for f in dataclasses.fields(TrainSettings)}:
        raise argparse.ArgumentTypeError(f"TrainSettings has no field {name!r}")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    return name, value


def row(method, annotation, seconds, result, steps="–", load=None, tries=1) -> list:
    return [
        method,
        annotation,
        seconds,
        steps if isinstance(steps, str) else f"{steps[0]} ({steps[1]})",
        f"{result['dice']:.3f}",
        f"{result['iou']:.3f}",
        f"**{result['f1']:.3f}**",
        result["objects"],
        "–" if load is None else f"{load.cores:.2f}" + (f" ({tries} runs)" if tries > 1 else ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120])
    parser.add_argument(
        "--set",
        type=parse_setting,
        action="append",
        default=[],
        help="a TrainSettings field for every U-Net run, e.g. learning_rate=5e-3",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=PLUGIN_THREADS,
        help="torch threads (default: one fewer than the cores, as the plugin trains)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="train again when other processes were busy; the quietest run is kept",
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=["strip", "strip-unweighted", "scribbles"],
        choices=["strip", "strip-unweighted", "scribbles", "scribbles-unweighted"],
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    spare = max(0, (os.cpu_count() or 1) - args.threads)
    print(f"Machine: {machine()}\n")
    image, instances = nuclei(), nuclei_instances()
    strip = nuclei_annotations(ANNOTATED_ROWS)
    annotations = {"strip": strip, "scribbles": scribbles(strip, instances)}
    counts = {
        name: {k: int((a == k).sum()) for k in (BACKGROUND, NUCLEUS)}
        for name, a in annotations.items()
    }
    rows = []
    for name, a in annotations.items():
        for features, title in (
            ({"edges": False, "sigma_min": 1}, "forest (gallery features)"),
            ({}, "forest (all default features)"),
        ):
            labels, seconds = forest(image, a, **features)
            result = scores(labels, connected_components(labels == NUCLEUS), instances)
            rows.append(row(title, name, f"{seconds:.1f}", result))
    for variant in args.variants:
        name, _, weighting = variant.partition("-")
        w0 = 0.0 if weighting == "unweighted" else TrainSettings().w0
        method = f"U-Net, {'unweighted' if w0 == 0 else f'border-weighted (w0 = {w0:g})'}"
        for budget in args.budgets:
            settings = TrainSettings(
                steps=None, time_limit=budget, device="cpu", seed=args.seed, w0=w0
            )
            settings = dataclasses.replace(settings, **dict(args.set))
            tries = []
            for _ in range(1 + args.retries):
                tries.append(train_unet(image, annotations[name], settings))
                if tries[-1][3].cores < spare + QUIET:
                    break
            segmenter, steps, kept, load = min(tries, key=lambda t: t[3].cores)
            prediction = predict(segmenter, image, device="cpu", instances_of=NUCLEUS)
            result = scores(prediction.labels, prediction.instances, instances)
            rows.append(row(method, name, f"{budget:g}", result, (steps, kept), load, len(tries)))
            print(" | ".join(map(str, rows[-1])), flush=True)
    headers = ["method", "annotation", "train s", "steps (kept)", "pixel Dice", "pixel IoU"]
    headers += ["object F1 @0.5", "objects found/true", "other processes (cores)"]
    print()
    print(table(headers, rows))
    overrides = ", ".join(f"{k} = {v}" for k, v in args.set) or "none"
    print(
        f"\nAnnotated pixels (background/nucleus): strip {counts['strip'][1]}/"
        f"{counts['strip'][2]}, scribbles {counts['scribbles'][1]}/{counts['scribbles'][2]}. "
        f"U-Net: TrainSettings defaults (CPU, {args.threads} torch thread(s), seed "
        f"{args.seed}), time limit as given, overrides: {overrides}. Forest: 50 trees, "
        "depth 10, 5% samples per tree; seconds from features to prediction. Scored on rows "
        "160-511. Steps (kept): steps done, and the step whose weights the trainer returned "
        "(its best score: validation Dice, or the smoothed loss when nothing is held back)."
    )


if __name__ == "__main__":
    main()
