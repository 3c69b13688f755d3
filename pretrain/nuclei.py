"""Train the built-in fluorescence nuclei model with the project's own Trainer.

Data: the hand-annotated nucleus images that ship in the ``mnfinder`` package (MIT licence),
fetched with ``pip download --no-deps`` into a cache folder when this script runs (never by the
plugin). Its training and validation folders are trained on, its test folder scores the model;
the DSB 2018 sample shipped with the plugin is never used here (it is the zero-shot test).

    python pretrain/nuclei.py --minutes 45 -o src/napari_unet/models/nuclei.safetensors

The shipped model took four rounds, each recorded in its history: two (45 and 40 minutes) by
this script before it cut outlines back (``outlined``), then two continuing it with
``--from MODEL --threads 2``: ``--minutes 40 --seed 0`` and ``--minutes 35 --seed 1``.

The corpus: each image normalised by its own percentiles, rescaled so that its nuclei measure
10 to 60 pixels across, cut into tiles and varied in blur, noise and gamma; labels made by
``from_instances`` (a background line where nuclei touch), micronuclei left unannotated. The
hand-drawn outlines reach the foot of each nucleus's intensity profile; they are cut back to its
half maximum (``outlined``), an edge that stays in place when a microscope blurs more. The run
is seeded and writes a JSON record of its data, versions, steps and scores beside the model.
"""

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from skimage.measure import label
from skimage.transform import rescale

from napari_unet import __version__
from napari_unet.engine.annotations import from_instances
from napari_unet.engine.images import as_stack
from napari_unet.engine.object_size import object_diameter
from napari_unet.engine.objects import ObjectSettings
from napari_unet.engine.predict import measure_scale, predict
from napari_unet.engine.progress import drain
from napari_unet.engine.scores import object_f1
from napari_unet.engine.train import NEW_MODEL_RATE, Trainer, TrainSettings
from napari_unet.storage.loading import load_model
from napari_unet.storage.model_files import save_model

PACKAGE = "mnfinder==1.2.3"
WHEEL = "mnfinder-1.2.3-py3-none-any.whl"
WHEEL_SHA256 = "11b1f6aea9f40b4dd3cf6c3de30ef8d517a4833907b88b86ce2b7ab1f9dbce4a"
TRAIN_FOLDERS = ("training-data", "validation-data")
TEST_FOLDER = "test-data"
DIAMETERS = (10.0, 60.0)
"""Median nucleus diameters (pixels) the rescaled corpus spans: 10x to 63x objectives."""
TILE = 512
MAX_TILES = 280
"""The trainer keeps every tile, padded, on the device: about 11 GB of CPU memory."""
CLASS_NAMES = ["background", "nucleus"]
HALF_MAXIMUM = 0.5
"""Where a nucleus's outline lies: this fraction of the way from the background around it to
the median of its inside."""


def fetch(cache: Path) -> tuple[Path, str]:
    """The unpacked mnfinder package in ``cache``, downloaded once (build time only)."""
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(cache)],
            check=True,
        )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel} is not the wheel this model was made from (sha256 {digest})")
    root = cache / "mnfinder"
    if not root.exists():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(cache)
    return root, digest


def instances_of(mask_png: Path) -> np.ndarray:
    """Nucleus instances from an RGBA mask: one colour per nucleus, colours re-used for
    distant nuclei, so connected regions of one colour."""
    rgba = np.asarray(Image.open(mask_png)).astype(np.int64)
    if rgba.ndim == 2:
        return label(rgba > 0, connectivity=1)
    key = (rgba[..., 0] << 16) | (rgba[..., 1] << 8) | rgba[..., 2]
    if rgba.shape[-1] == 4:
        key[rgba[..., 3] == 0] = 0
    return label(key, background=0, connectivity=1)


def pairs(root: Path, folders) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """(name, image, nucleus instances, micronucleus mask) for every image in ``folders``."""
    import tifffile

    found = []
    for folder in folders:
        for image_file in sorted((root / folder).glob("*/images/*.tif")):
            mask = image_file.parent.parent / "nucleus_masks" / (image_file.stem + ".png")
            if not mask.exists():
                continue
            micro_file = image_file.parent.parent / "mn_masks" / (image_file.stem + ".png")
            image = tifffile.imread(image_file).astype(np.float32)
            if image.ndim == 3:  # a few are saved with a colour axis: keep the brightest
                image = image.max(axis=-1) if image.shape[-1] <= 4 else image.max(axis=0)
            instances = instances_of(mask)
            micro = (
                np.asarray(Image.open(micro_file))[..., :3].any(-1)
                if micro_file.exists()
                else np.zeros(instances.shape, bool)
            )
            if image.shape != instances.shape:
                continue
            name = str(image_file.relative_to(root))
            found.append((name, image, outlined(normalised(image), instances), micro))
    return found


def outlined(image: np.ndarray, instances: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """``instances`` with each nucleus cut back to its half-maximum outline in the lightly
    smoothed ``image``: holes filled, the largest part kept; a nucleus too faint or crowded to
    measure, or that would lose over 60% of its area, stays as drawn."""
    smooth = ndimage.gaussian_filter(image.astype(np.float32), sigma)
    result = instances.copy()
    for index, box in enumerate(ndimage.find_objects(instances), start=1):
        if box is None:
            continue
        box = tuple(slice(max(side.start - 8, 0), side.stop + 8) for side in box)
        mask = instances[box] == index
        inside = ndimage.binary_erosion(mask, iterations=2)
        around = ndimage.binary_dilation(mask, iterations=6)
        around &= ~ndimage.binary_dilation(mask, iterations=2) & (instances[box] == 0)
        if inside.sum() < 5 or around.sum() < 5:
            continue
        background, middle = np.median(smooth[box][around]), np.median(smooth[box][inside])
        if middle <= background:
            continue
        kept = mask & (smooth[box] >= background + HALF_MAXIMUM * (middle - background))
        parts, count = ndimage.label(ndimage.binary_fill_holes(kept))
        if count == 0:
            continue
        kept = parts == np.argmax(np.bincount(parts.ravel())[1:]) + 1
        if kept.sum() >= 0.4 * mask.sum():
            result[box][mask & ~kept] = 0
    return result


def normalised(image: np.ndarray) -> np.ndarray:
    """``image`` between its 1st and 99.8th percentile, as the plugin normalises."""
    low, high = np.percentile(image, [1.0, 99.8])
    return (image - low) / max(high - low, 1e-6)


def median_diameter(instances: np.ndarray) -> float:
    areas = np.bincount(instances.ravel())[1:]
    areas = areas[areas > 0]
    return float(2 * np.sqrt(np.median(areas) / np.pi)) if len(areas) else 30.0


def object_size(found) -> float:
    """The model's object size (:mod:`napari_unet.engine.object_size` rescales images to it):
    the width that ``object_diameter`` measures on the training nuclei once they are rescaled
    to the middle of DIAMETERS on a log scale, where the corpus is centred."""
    ratios = []
    for _, _, instances, _ in found:
        width = object_diameter(instances > 0)
        if width is not None:
            ratios.append(width / median_diameter(instances))
    centre = np.sqrt(DIAMETERS[0] * DIAMETERS[1])
    return round(float(centre * (np.median(ratios) if ratios else 1.0)), 1)


def corpus(found, rng: np.random.Generator, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """(tiles, annotations): ``copies`` rescaled and degraded versions of each image, cut into
    TILE x TILE tiles that hold at least one nucleus."""
    tiles, labels = [], []
    for _, image, instances, micro in found:
        native = median_diameter(instances)
        for _ in range(copies):
            target = np.exp(rng.uniform(*np.log(DIAMETERS)))
            scale = float(np.clip(target / native, 0.2, 2.5))
            img = rescale(image, scale, order=1, anti_aliasing=scale < 1, preserve_range=True)
            ids = rescale(instances, scale, order=0, anti_aliasing=False, preserve_range=True)
            mn = rescale(micro.astype(np.float32), scale, order=0, preserve_range=True) > 0
            ids = ids.astype(np.int32)
            ann = from_instances(ids)
            ann[ndimage.binary_dilation(mn, iterations=2) & (ids == 0)] = 0
            img = degraded(img, rng)
            for y in range(0, max(1, img.shape[0] - TILE // 2), TILE):
                for x in range(0, max(1, img.shape[1] - TILE // 2), TILE):
                    a = _tile(ann, y, x)
                    if (a == 2).sum() < 50:
                        continue
                    tiles.append(normalised(_tile(img, y, x)).astype(np.float32))
                    labels.append(a)
    keep = np.sort(rng.permutation(len(tiles))[:MAX_TILES])
    return np.stack([tiles[i] for i in keep]), np.stack([labels[i] for i in keep])


def degraded(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another microscope: gamma, blur, an offset and shot plus read noise."""
    image = normalised(image).clip(0, None)
    image = image ** rng.uniform(0.6, 1.5)
    sigma = rng.uniform(0, 2.0)
    if sigma > 0.3:
        image = ndimage.gaussian_filter(image, sigma)
    photons = np.exp(rng.uniform(np.log(20), np.log(2000)))
    image = rng.poisson(image.clip(0, None) * photons) / photons
    image = image + rng.uniform(0, 0.3) + rng.normal(0, rng.uniform(0, 0.03), image.shape)
    return image.astype(np.float32)


def _tile(array: np.ndarray, y: int, x: int) -> np.ndarray:
    """A TILE x TILE tile, padded (image: reflected; labels: unannotated) at the border."""
    part = array[y : y + TILE, x : x + TILE]
    pad = ((0, TILE - part.shape[0]), (0, TILE - part.shape[1]))
    if part.dtype == np.uint8:
        return np.pad(part, pad)
    return np.pad(part, pad, mode="reflect")


def score(segmenter, found) -> dict[str, float]:
    """Object F1 at IoU 0.5 per test image, and their mean, each image predicted at the scale
    the model measures for it (as the plugin predicts)."""
    scores = {}
    for name, image, instances, _ in found:
        factor, _ = measure_scale(segmenter, as_stack(image))
        result = predict(segmenter, image, instances_of=2, objects=ObjectSettings(), scale=factor)
        scores[name] = round(object_f1(result.instances, instances), 4)
    scores["mean"] = round(float(np.mean(list(scores.values()))), 4)
    return scores


def make_model(training, test, settings: TrainSettings, copies: int, start=None, sha256=None):
    """Build the corpus from ``training`` pairs, train on it, score on ``test``; the model's
    last history entry records the run ("pretraining"), with the data's ``sha256``."""
    rng = np.random.default_rng(settings.seed)
    images, annotations = corpus(training, rng, copies)
    print(f"corpus: {len(images)} tiles of {TILE}² from {len(training)} images", flush=True)
    trainer = Trainer(
        images, annotations, settings=settings, segmenter=start, class_names=CLASS_NAMES
    )
    started = time.perf_counter()

    def report(event) -> None:
        if event.step % 500 == 0:
            print(f"step {event.step} loss {event.mean_loss:.4f} {event.elapsed:.0f}s", flush=True)

    segmenter = drain(trainer.run(), report)
    segmenter.object_diameter = object_size(training)
    seconds = time.perf_counter() - started
    scores = score(segmenter, test)
    print(f"test object F1 @ IoU 0.5: {scores['mean']:.3f}", flush=True)
    segmenter.history[-1]["pretraining"] = {
        "data": {
            "package": PACKAGE,
            "licence": "MIT (Copyright 2023 Lucian DiPeso)",
            "wheel_sha256": sha256,
            "images": [name for name, *_ in training],
            "tiles": int(len(images)),
        },
        "script": "pretrain/nuclei.py",
        "seed": settings.seed,
        "seconds": round(seconds, 1),
        "versions": {
            "napari_unet": __version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "test_object_f1": scores,
    }
    return segmenter


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("pretrain/.cache"))
    parser.add_argument("--minutes", type=float, default=45.0)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--copies", type=int, default=4, help="rescaled copies per image")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="use only N images (smoke test)")
    parser.add_argument("--from", dest="start", type=Path, help="continue training this model")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    root, digest = fetch(args.cache)
    training = pairs(root, TRAIN_FOLDERS)[: args.limit]
    test = pairs(root, [TEST_FOLDER])[: args.limit]
    settings = TrainSettings(
        steps=args.steps,
        time_limit=None if args.steps else args.minutes * 60,
        depth=None if args.start else args.depth,
        width=None if args.start else args.width,
        seed=args.seed,
        validation_fraction=0.0,
        learning_rate=NEW_MODEL_RATE,  # a round on from --start goes on pretraining
        keep_start=0.0,  # the tiles are annotated throughout: learn the truth, not the start
        rescale=False,  # the corpus spans its sizes on purpose
        device="cpu",
    )
    start = load_model(args.start) if args.start else None
    segmenter = make_model(training, test, settings, args.copies, start, digest)
    save_model(segmenter, args.output, overwrite=True)
    record = args.output.with_suffix(".json")
    record.write_text(json.dumps(segmenter.history[-1]["pretraining"], indent=1) + "\n")
    print(f"wrote {args.output} and {record}")


if __name__ == "__main__":
    main()
