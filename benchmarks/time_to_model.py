"""Time to a useful model: objects and pixels of the U-Net after 30, 60 and 120 s of CPU
training (or a fixed number of steps) vs. a random forest, on the same annotations.

The DSB2018 nuclei image shipped with the package (the pixels of ../shared/data/dsb2018-nuclei)
is annotated on rows 0-127, as

- ``strip``: ``from_instances`` (1 = background, 2 = nucleus, touching nuclei separated by a
  background line);
- ``blobs``: painted as a person painting classes would, touching nuclei one blob
  (``np.where(instances > 0, 2, 1)``);
- ``painted``: each nucleus painted with its own id (napari's "new label", 2, 3, ...) and
  converted with ``objects_to_classes`` (the same annotations as ``strip`` by construction:
  the script checks it and trains once);
- ``scribbles``: a few 3-pixel strokes per class inside those rows;
- ``strip-boundary`` (a prototype): three classes, background, nucleus interior and a 2-pixel
  nucleus boundary; objects are the interior's components grown into the nucleus.

Each U-Net is its own training round (the best weights by validation, as a user who stops
there gets them), scored on rows 160-511, never annotated: pixel Dice of the nucleus class,
and objects, as connected components and as ``find_objects`` (seeded watershed) with each
``--split``, matched to the true instances: F1 at IoU 0.5 and the DSB 2018 metric, the mean
over IoU thresholds 0.5, 0.55, ..., 0.9 of TP / (TP + FP + FN). The peer is scikit-image's
random-forest pixel classifier (fit_segmenter on multiscale_basic_features) on the same
annotations, its objects cut the same two ways.

Torch uses one thread fewer than the cores, as the plugin does (--threads to change). With
``--budgets`` (seconds) a U-Net run during which other processes needed more than the cores
left free is repeated once (--retries) and the quieter run kept. On a busy machine use
``--steps`` (a fixed number of steps per round) and ``--cache DIR`` (trained models are saved
there and reused, so that object settings can be tuned without training again). ``--from
nuclei`` (or a model file) adds the same rounds fine-tuning that model, and its answer before
any training.

Usage: .venv/bin/python benchmarks/time_to_model.py [--budgets 30 60 120 | --steps 500]
       [--variants strip blobs painted scribbles] [--split 0.5 0.7] [--cache /tmp/models]
       [--from nuclei]
"""

import argparse
import dataclasses
import hashlib
import itertools
import os
import time
from pathlib import Path

import numpy as np
import torch
from _common import DATA, PLUGIN_THREADS, QUIET, OtherLoad, machine, table
from scipy import ndimage
from skimage.feature import multiscale_basic_features
from skimage.future import fit_segmenter
from skimage.segmentation import watershed
from sklearn.ensemble import RandomForestClassifier

from napari_unet.engine.annotations import BACKGROUND, from_instances, objects_to_classes
from napari_unet.engine.objects import ObjectSettings, find_objects
from napari_unet.engine.predict import predict
from napari_unet.engine.scores import THRESHOLDS, matched_objects
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_instances
from napari_unet.storage.loading import load_model
from napari_unet.storage.model_files import save_model

ANNOTATED_ROWS = 128
SCORED_ROWS = slice(160, None)
NUCLEUS = 2
BOUNDARY = 3
VARIANTS = ["strip", "blobs", "painted", "scribbles", "strip-boundary"]


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


def with_boundary(instances: np.ndarray, width: int = 2) -> np.ndarray:
    """Three classes: 1 = background, 2 = nucleus interior, 3 = the outer ``width`` pixels of
    each nucleus (where it meets the background or another nucleus)."""
    size = 2 * width + 1
    same = ndimage.minimum_filter(instances, size) == ndimage.maximum_filter(instances, size)
    annotations = np.where(instances > 0, BOUNDARY, BACKGROUND).astype(np.uint8)
    annotations[same & (instances > 0)] = NUCLEUS
    return annotations


def all_annotations(instances: np.ndarray) -> dict[str, np.ndarray]:
    """Every variant's annotations of rows 0-127 (0 below)."""
    strip_instances = instances.copy()
    strip_instances[ANNOTATED_ROWS:] = 0
    painted = np.where(instances > 0, instances.astype(np.uint32) + 1, BACKGROUND)
    out = {
        "strip": from_instances(instances),
        "blobs": np.where(instances > 0, NUCLEUS, BACKGROUND).astype(np.uint8),
        "painted": objects_to_classes(painted),
        "strip-boundary": with_boundary(instances),
    }
    for a in out.values():
        a[ANNOTATED_ROWS:] = 0
    out["scribbles"] = scribbles(out["strip"], instances)
    return out


def scores(nucleus, objects, instances, rows: slice = SCORED_ROWS) -> dict:
    """Pixel Dice of the nucleus class, object F1 at IoU 0.5 and the DSB 2018 mean AP, on the
    scored rows."""
    guess = nucleus[rows]
    truth = instances[rows] > 0
    dice = 2 * (guess & truth).sum() / (guess.sum() + truth.sum())
    matched, n_found, n_true = matched_objects(objects[rows], instances[rows], THRESHOLDS)
    ap = matched / np.maximum(n_found + n_true - matched, 1)
    return {
        "dice": dice,
        "f1": 2 * matched[0] / max(n_found + n_true, 1),
        "map": ap.mean(),
        "objects": f"{n_found}/{n_true}",
    }


def train_unet(image, annotations, settings: TrainSettings, start=None) -> tuple:
    """One training round (fine-tuning ``start`` when given): the segmenter, the steps done,
    the step whose weights were kept (the last improvement the trainer reported) and the other
    processes' load."""
    run = Trainer(image, annotations, settings=settings, segmenter=start).run()
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
    """scikit-image's trainable segmentation, as in its gallery example; the class
    probabilities (one per annotated id, from 1) and seconds."""
    start = time.perf_counter()
    feature_map = multiscale_basic_features(image.astype(np.float32), **features)
    classifier = RandomForestClassifier(
        n_estimators=50, n_jobs=-1, max_depth=10, max_samples=0.05, random_state=0
    )
    classifier = fit_segmenter(annotations, feature_map, classifier)
    flat = feature_map.reshape(-1, feature_map.shape[-1])
    probabilities = classifier.predict_proba(flat).T.reshape(-1, *annotations.shape)
    return probabilities, time.perf_counter() - start


def boundary_objects(probabilities: np.ndarray) -> np.ndarray:
    """The prototype's objects: components of the interior class, grown over interior and
    boundary by a watershed on the interior probability."""
    labels = probabilities.argmax(0) + 1
    seeds = ndimage.label(labels == NUCLEUS)[0]
    return watershed(-probabilities[NUCLEUS - 1], seeds, mask=labels >= NUCLEUS)


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


def object_rows(method, annotation, amount, steps, load, probabilities, args, instances):
    """One row per way of cutting objects from the same class probabilities."""
    labels = probabilities.argmax(0) + 1
    nucleus = labels == NUCLEUS
    if probabilities.shape[0] > NUCLEUS:
        nucleus = labels >= NUCLEUS
        cuts = [
            ("interior components, grown (prototype)", lambda: boundary_objects(probabilities))
        ]
    else:
        cuts = [
            (
                "connected components",
                lambda: find_objects(probabilities[NUCLEUS - 1], nucleus, ObjectSettings(0, 0)),
            )
        ]
    probability = probabilities[NUCLEUS - 1]
    for split in args.split:
        settings = ObjectSettings(split=split, min_size=args.min_size)
        cuts.append(
            (
                f"find_objects(split={split:g}, min_size={args.min_size})",
                lambda s=settings: find_objects(probability, nucleus, s),
            )
        )
    rows = []
    for name, cut in cuts:
        start = time.perf_counter()
        objects = cut()
        seconds = time.perf_counter() - start
        result = scores(nucleus, objects, instances)
        rows.append(
            [
                method,
                annotation,
                amount,
                steps,
                f"{result['dice']:.3f}",
                name,
                f"**{result['f1']:.3f}**",
                f"{result['map']:.3f}",
                result["objects"],
                f"{1000 * seconds:.0f}",
                load,
            ]
        )
        print(" | ".join(map(str, rows[-1])), flush=True)
    return rows


def splitting_only(splits: list[float], min_size: int) -> str:
    """A table: find_objects on true masks (the instances' union, probability = the mask
    blurred by one pixel), of DSB nuclei rescaled and of the larger Huh7 cells (19 labelled
    cells of ../shared/data/ctc-huh7 frame 20), every pixel scored: how splitting alone
    depends on the objects' size."""
    import tifffile

    cases = [(f"DSB nuclei x{s:g}", rescale_ids(nuclei_instances(), s)) for s in (0.5, 1, 2)]
    huh7 = DATA / "ctc-huh7" / "instances_slice20.tif"
    if huh7.exists():
        cases.append(("Huh7 cells", tifffile.imread(huh7)))
    rows = []
    for name, ids in cases:
        truth = ids > 0
        blurred = ndimage.gaussian_filter(truth.astype(np.float32), 1.0)
        row = [name, f"{len(np.unique(ids)) - 1}"]
        for split in [0.0, *splits]:
            objects = find_objects(blurred, truth, ObjectSettings(split, min_size if split else 0))
            result = scores(truth, objects, ids, rows=slice(None))
            row.append(f"{result['f1']:.3f} / {result['map']:.3f}")
        rows.append(row)
    headers = ["true mask", "objects", "connected components"]
    headers += [f"split={s:g}, min_size={min_size}" for s in splits]
    return table(headers, rows) + "\n\nF1 @0.5 / mAP 0.5–0.9, every pixel scored."


def rescale_ids(ids: np.ndarray, scale: float) -> np.ndarray:
    return ndimage.zoom(ids, scale, order=0) if scale != 1 else ids


def cached_unet(image, annotations, settings, name, amount, args, start=None):
    """Train (or, with --cache, load the model trained before with the same settings)."""
    origin = "" if start is None else args.start
    key = hashlib.sha1(
        (repr(sorted(dataclasses.asdict(settings).items())) + name + origin).encode()
    ).hexdigest()[:10]
    path = Path(args.cache) / f"{name}-{amount}-{key}.safetensors" if args.cache else None
    if path is not None and path.exists():
        segmenter = load_model(path)
        history = segmenter.history[-1]
        return segmenter, f"{history['steps']} (cached)", "–"
    spare = max(0, (os.cpu_count() or 1) - args.threads)
    tries = []
    for _ in range(1 + (args.retries if settings.time_limit else 0)):
        tries.append(train_unet(image, annotations, settings, start))
        if tries[-1][3].cores < spare + QUIET:
            break
    segmenter, steps, kept, load = min(tries, key=lambda t: t[3].cores)
    if path is not None:
        save_model(segmenter, path)
    runs = f" ({len(tries)} runs)" if len(tries) > 1 else ""
    return segmenter, f"{steps} ({kept})", f"{load.cores:.2f}{runs}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120])
    parser.add_argument(
        "--steps", type=int, nargs="+", help="fixed steps per round instead of time budgets"
    )
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
        default=["strip", "blobs", "painted", "scribbles"],
        choices=VARIANTS,
    )
    parser.add_argument(
        "--split",
        type=float,
        nargs="+",
        default=[ObjectSettings().split],
        help="find_objects split values to compare (0..1)",
    )
    parser.add_argument("--min-size", type=int, default=ObjectSettings().min_size)
    parser.add_argument("--cache", help="folder to save trained models in and reuse them from")
    parser.add_argument("--no-forest", action="store_true", help="leave the forest out")
    parser.add_argument(
        "--from",
        dest="start",
        help="also fine-tune this model (a file, or a built-in such as nuclei) on each "
        "annotation, beside the new U-Net, with a row before any training",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Machine: {machine()}\n")
    image, instances = nuclei(), nuclei_instances()
    annotations = all_annotations(instances)
    assert (annotations["painted"] == annotations["strip"]).all()
    truth = instances > 0
    blurred = ndimage.gaussian_filter(truth.astype(np.float32), 1.0)
    rows = object_rows(
        "true nucleus mask (splitting only)",
        "–",
        "–",
        "–",
        "–",
        np.stack([1 - blurred, blurred]),
        args,
        instances,
    )
    forest_variants = [v for v in args.variants if v not in ("painted", "strip-boundary")]
    for name in [] if args.no_forest else forest_variants:
        probabilities, seconds = forest(image, annotations[name], edges=False, sigma_min=1)
        rows += object_rows(
            "forest", name, f"{seconds:.1f} s", "–", "–", probabilities, args, instances
        )
    amounts = (
        [("steps", n) for n in args.steps]
        if args.steps
        else [("time_limit", b) for b in args.budgets]
    )
    start = load_model(args.start) if args.start else None
    if start is not None:
        zero_shot = predict(start, image, device="cpu", labels=False, probabilities=True)
        method = f"U-Net from {args.start}"
        cells = (method, "none", "0 s", 0, "–", zero_shot.probabilities, args, instances)
        rows += object_rows(*cells)
    starts = [("U-Net", None)] + ([(f"U-Net from {args.start}", start)] if start else [])
    trained = {}
    for variant, (method, origin), (kind, amount) in itertools.product(
        args.variants, starts, amounts
    ):
        if kind == "steps":
            settings = TrainSettings(steps=amount, time_limit=None, device="cpu")
            label = f"{amount} steps"
        else:
            settings = TrainSettings(steps=None, time_limit=amount, device="cpu")
            label = f"{amount:g} s"
        settings = dataclasses.replace(settings, seed=args.seed, **dict(args.set))
        train_as = "strip" if variant == "painted" else variant
        key = (train_as, method, kind, amount)
        if key not in trained:
            trained[key] = cached_unet(
                image,
                annotations[train_as],
                settings,
                train_as,
                f"{kind}{amount}",
                args,
                origin,
            )
        segmenter, steps, load = trained[key]
        probabilities = predict(
            segmenter, image, device="cpu", labels=False, probabilities=True
        ).probabilities
        same = " (= strip)" if variant == "painted" else ""
        rows += object_rows(
            method, variant + same, label, steps, load, probabilities, args, instances
        )
    headers = ["method", "annotation", "training", "steps (kept)", "pixel Dice", "objects"]
    headers += ["F1 @0.5", "mAP 0.5–0.9", "found/true", "objects ms", "other load (cores)"]
    print()
    print(table(headers, rows))
    overrides = ", ".join(f"{k} = {v}" for k, v in args.set) or "none"
    counts = {n: (int((a == 1).sum()), int((a >= 2).sum())) for n, a in annotations.items()}
    print(
        "\nAnnotated pixels (background/nucleus): "
        + ", ".join(f"{n} {b}/{f}" for n, (b, f) in counts.items() if n in args.variants)
        + f". U-Net: TrainSettings defaults (CPU, {args.threads} torch thread(s), seed "
        f"{args.seed}), overrides: {overrides}. Forest: gallery features, 50 trees, depth 10, "
        "5% samples per tree; seconds from features to probabilities. Scored on rows 160-511. "
        "Steps (kept): steps done, and the step whose weights the trainer returned. mAP: mean "
        "over IoU 0.5, 0.55, ..., 0.9 of TP / (TP + FP + FN). Objects ms: time to cut the "
        "objects of the whole 512x512 image."
    )
    print("\nSplitting only, on true masks of other sizes:\n")
    print(splitting_only(args.split, args.min_size))


if __name__ == "__main__":
    main()
