"""Where next: does annotating the region Next region picks teach more than another region?

A simulated annotator starts from a small annotation (two nuclei with their background ring and
one background stroke) and, for ``--rounds`` rounds, adds the truth of one more square region,
chosen (a) by Next region (``rank_regions`` on the doubt map of the objects found,
``engine.doubt``), (b) by the pixel uncertainty alone (the first Next region), (c) at random
among the unannotated regions, (d) where the truth has the most foreground; after each addition the
model is fine-tuned for a fixed number of steps (same seed for every strategy), from the
built-in nuclei model as in the dock. Regions are drawn from the top half of the image only;
object F1 at IoU 0.5 is scored on the bottom half, which no strategy annotates, so every
strategy is scored on the same pixels. Round 0 is the starting annotation alone. The first
table also gives the uncertainty's ROC AUC for "pixel class wrong" on the scored half, and the
AUC for "object wrong" (not matched at IoU 0.5) of each object's doubt and of its mean
uncertainty.

Usage: .venv/bin/python benchmarks/next_region.py [--seeds 3] [--first-seed 0] [--steps 40]
       [--rounds 5] [--learning-rate RATE] [--keep-start 0.5] [--images dsb transposed]
"""

import argparse
import time

import numpy as np
import torch
from _common import PLUGIN_THREADS, machine, table
from scipy import ndimage

from napari_unet.engine.annotations import BACKGROUND, from_instances
from napari_unet.engine.doubt import doubt_map, object_doubts
from napari_unet.engine.predict import predict
from napari_unet.engine.progress import drain
from napari_unet.engine.regions import Region, rank_regions
from napari_unet.engine.scores import matched_objects, matches_one
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_instances
from napari_unet.storage.loading import load_model

NUCLEUS = 2
STRATEGIES = ("next region", "pixel uncertainty", "random", "most foreground")


def images() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The DSB sample with its instance truth, as it is and transposed (so the annotated and
    scored halves swap for left and right). The Huh7 frame's truth labels only some cells, so
    a region's truth is not known there: it is left out."""
    image, instances = nuclei(), nuclei_instances()
    return {
        "DSB 2018 sample": (image, instances),
        "DSB 2018 sample, transposed": (image.T.copy(), instances.T.copy()),
    }


def starting_annotation(instances: np.ndarray, seed: int) -> np.ndarray:
    """Two nuclei of the top half (with a 2-pixel background ring) and one 3-pixel-wide
    background stroke through it."""
    rng = np.random.default_rng(seed)
    top = instances[: len(instances) // 2]
    ids = [i for i in np.unique(top) if i and not (instances[len(top) :] == i).any()]
    out = np.zeros(instances.shape, np.uint8)
    for i in rng.choice(ids, size=2, replace=False):
        nucleus = instances == i
        ring = ndimage.binary_dilation(nucleus, iterations=2) & (instances == 0)
        out[ring] = BACKGROUND
        out[nucleus] = NUCLEUS
    background = ndimage.binary_erosion(top == 0, iterations=3)
    rows = np.nonzero(background.sum(1) > top.shape[1] // 3)[0]
    row = int(rng.choice(rows))
    out[row - 1 : row + 2][background[row - 1 : row + 2]] = BACKGROUND
    return out


def pool_regions(shape, size: int) -> list[Region]:
    """The candidate regions of the top half, on a half-region grid."""
    half = shape[0] // 2
    return [
        Region(0, y, x, size, 0.0)
        for y in range(0, half - size + 1, size // 2)
        for x in range(0, shape[1] - size + 1, size // 2)
    ]


def choose(strategy, rng, result, annotated, instances, size) -> Region:
    """The next region to annotate, by ``strategy``, never one already annotated in full."""
    half = len(annotated) // 2
    if strategy in ("next region", "pixel uncertainty"):
        hidden = annotated.copy()
        hidden[half:] = True  # the scored half is never offered
        unsure = result.uncertainty
        if strategy == "next region":
            unsure = doubt_map(result.instances, unsure)
        return rank_regions(unsure, hidden, size=size, count=1)[0]
    open_regions = [r for r in pool_regions(annotated.shape, size) if not annotated[_box(r)].all()]
    if strategy == "random":
        return open_regions[rng.integers(len(open_regions))]
    unannotated_foreground = (instances > 0) & ~annotated
    return max(open_regions, key=lambda r: unannotated_foreground[_box(r)].sum())


def _box(region: Region) -> tuple[slice, slice]:
    return (
        slice(region.y, region.y + region.size),
        slice(region.x, region.x + region.size),
    )


def train(image, annotations, start, steps: int, seed: int, args):
    settings = TrainSettings(
        steps=steps,
        seed=seed,
        device="cpu",
        learning_rate=args.learning_rate,
        keep_start=args.keep_start,
    )
    return drain(Trainer(image, annotations, settings=settings, segmenter=start).run())


def evaluate(segmenter, image, instances) -> tuple[float, object, float, float, float]:
    """(object F1 on the scored half, the prediction, pixel AUC, object AUC of the doubt and
    of the mean uncertainty)."""
    result = predict(segmenter, image, instances_of=NUCLEUS, uncertainty=True, device="cpu")
    half = len(image) // 2
    objects, truth = result.instances[half:], instances[half:]
    matched, n_found, n_true = matched_objects(objects, truth, [0.5])
    f1 = 2 * matched[0] / max(n_found + n_true, 1)
    unsure = result.uncertainty[half:]
    wrong_pixel = (result.labels[half:] == NUCLEUS) != (truth > 0)
    doubt, mean_unsure, wrong_object = object_signs(objects, truth, unsure)
    return (
        f1,
        result,
        roc_auc(unsure.ravel(), wrong_pixel.ravel()),
        roc_auc(doubt, wrong_object),
        roc_auc(mean_unsure, wrong_object),
    )


def object_signs(objects: np.ndarray, truth: np.ndarray, unsure: np.ndarray) -> tuple:
    """Each found object's doubt and mean uncertainty, and whether it is wrong: not matched
    to a true object at IoU 0.5 (merged, split, missed or spurious)."""
    ids = np.unique(objects[objects > 0])
    areas = np.bincount(objects.ravel())[ids]
    doubt = object_doubts(objects, unsure, float(np.median(areas)) if len(ids) else 1.0)[ids]
    mean = np.asarray(ndimage.mean(unsure, objects, ids))
    wrong = np.array([not matches_one(objects == i, truth) for i in ids], bool)
    return doubt, mean, wrong


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties half)."""
    positive = positive.astype(bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if not n_pos or not n_neg:
        return float("nan")
    ranks = _ranks(score.astype(np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_values))[0] + 1]
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values))
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks


def simulate(image, instances, seed, args, builtin) -> tuple[dict, list]:
    """F1 after each round for every strategy (round 0 shared), and the round-0 AUCs."""
    start = starting_annotation(instances, seed)
    first = train(image, start, builtin, args.steps, seed, args)
    f1, result0, *aucs = evaluate(first, image, instances)
    full = from_instances(instances)
    curves = {}
    for strategy in args.strategies:
        rng = np.random.default_rng(seed)
        annotations, model, result, curve = start.copy(), first, result0, [f1]
        for _ in range(args.rounds):
            region = choose(strategy, rng, result, annotations > 0, instances, args.size)
            box = _box(region)
            annotations[box] = np.where(annotations[box] > 0, annotations[box], full[box])
            model = train(image, annotations, model, args.steps, seed, args)
            score, result, *_ = evaluate(model, image, instances)
            curve.append(score)
        curves[strategy] = curve
        print(f"  seed {seed} {strategy}: " + " ".join(f"{v:.3f}" for v in curve), flush=True)
    return curves, aucs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run: this one on")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="region side (pixels)")
    parser.add_argument("--learning-rate", type=float, help="default: the fine-tuning rate")
    parser.add_argument("--keep-start", type=float, default=TrainSettings.keep_start)
    parser.add_argument(
        "--images", nargs="+", choices=("dsb", "transposed"), default=["dsb", "transposed"]
    )
    parser.add_argument("--threads", type=int, default=PLUGIN_THREADS)
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES,
        default=list(STRATEGIES),
        help="run these only (the others are seeded alike: their curves do not change)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    builtin = load_model("nuclei")
    started = time.perf_counter()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for key, (name, (image, instances)) in zip(
        ("dsb", "transposed"), images().items(), strict=True
    ):
        if key not in args.images:
            continue
        results = [simulate(image, instances, seed, args, builtin) for seed in seeds]
        aucs = np.nanmean([r[1] for r in results], axis=0)
        print(
            f"\n{name}: uncertainty AUC, pixel class wrong {aucs[0]:.3f}, "
            f"object wrong: its doubt {aucs[1]:.3f}, its mean uncertainty {aucs[2]:.3f} "
            f"(after round 0, mean of {args.seeds} seeds)\n"
        )
        header = ["strategy", *(f"round {i}" for i in range(args.rounds + 1))]
        rows = []
        for strategy in args.strategies:
            mean = np.mean([r[0][strategy] for r in results], axis=0)
            rows.append([strategy, *(f"{v:.3f}" for v in mean)])
        print(table(header, rows))
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    main()
