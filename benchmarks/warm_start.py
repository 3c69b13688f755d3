"""Start warm: the built-in nuclei model zero-shot and fine-tuned, beside training from scratch
and the random forest, on the same annotations, in one run.

The DSB 2018 nuclei sample shipped with the package (never used to make the built-in model) is
annotated on rows 0-127 as ``strip`` (touching nuclei kept apart by a background line),
``blobs`` (touching nuclei one blob) and ``corrections`` (only where the built-in model's
objects are wrong: the truth painted over each object of rows 0-127 that matches no true
nucleus at IoU 0.5, and over each true nucleus there that no object matches); rows 160-511,
never annotated, are scored: object F1 at IoU 0.5 and the mean AP over IoU 0.5-0.9, objects
cut by ``find_objects`` with the defaults. The zero-shot rows also score the sample rescaled
x0.5 and x2 (other magnifications). Each U-Net round trains for a time budget on the CPU with
one thread fewer than the cores, as the plugin.
Fine-tuning runs with the default ``keep_start`` (the start model's sure answers kept where
nothing is annotated) and without it (0), to show what that rule holds.

Usage: .venv/bin/python benchmarks/warm_start.py [--budgets 10 30 60]
       [--variants strip blobs corrections]
"""

import argparse
import time

import numpy as np
import torch
from _common import PLUGIN_THREADS, machine, table
from scipy import ndimage
from time_to_model import ANNOTATED_ROWS, NUCLEUS, all_annotations, forest, scores

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.objects import ObjectSettings, find_objects
from napari_unet.engine.predict import predict
from napari_unet.engine.progress import drain
from napari_unet.engine.scores import matches_one
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_instances
from napari_unet.storage.loading import load_model


def unet_objects(segmenter, image) -> tuple[np.ndarray, np.ndarray, float]:
    """(nucleus mask, objects, seconds to predict) with the plugin's defaults."""
    start = time.perf_counter()
    result = predict(segmenter, image, instances_of=NUCLEUS, objects=ObjectSettings())
    return result.labels == NUCLEUS, result.instances, time.perf_counter() - start


def row(method, annotation, budget, steps, nucleus, objects, instances, rows=None) -> list:
    result = scores(nucleus, objects, instances, **({} if rows is None else {"rows": rows}))
    cells = [method, annotation, budget, steps, f"**{result['f1']:.3f}**", f"{result['map']:.3f}"]
    print(" | ".join(map(str, cells)), flush=True)
    return cells


def zero_shot(builtin, image, instances) -> list[list]:
    rows = []
    for scale in (1.0, 0.5, 2.0):
        scaled = image if scale == 1 else ndimage.zoom(image.astype(np.float32), scale, order=1)
        ids = instances if scale == 1 else ndimage.zoom(instances, scale, order=0)
        nucleus, objects, seconds = unet_objects(builtin, scaled)
        label = f"nuclei model, zero-shot, x{scale:g} ({seconds:.2f} s to predict)"
        rows.append(
            row(label, "none", "0", "0", nucleus, objects, ids, slice(int(160 * scale), None))
        )
    return rows


def corrections(builtin, image, instances) -> np.ndarray:
    """The truth (touching nuclei apart) painted, in rows 0-127, over each zero-shot object that
    matches no true nucleus at IoU 0.5 and each true nucleus that no object matches."""
    _, objects, _ = unet_objects(builtin, image)
    truth = from_instances(instances)
    wrong = np.zeros(image.shape, bool)
    for found, true in ((objects, instances), (instances, objects)):
        for index in np.unique(found[:ANNOTATED_ROWS]):
            mask = found == index
            if index and not matches_one(mask, true):
                wrong |= ndimage.binary_dilation(mask, iterations=2)
    wrong[ANNOTATED_ROWS:] = False
    return np.where(wrong, truth, 0).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[10, 30, 60])
    parser.add_argument("--variants", nargs="+", default=["strip", "blobs", "corrections"])
    parser.add_argument("--threads", type=int, default=PLUGIN_THREADS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine())
    image, instances = nuclei(), nuclei_instances()
    annotations = all_annotations(instances)
    builtin = load_model("nuclei")
    rows = zero_shot(builtin, image, instances)
    annotations["corrections"] = corrections(builtin, image, instances)
    for name in args.variants:
        keep = TrainSettings().keep_start
        methods = [("from the nuclei model", builtin, keep), ("  keep_start 0", builtin, 0.0)]
        if name != "corrections":
            methods.append(("from scratch", None, 0.0))
        for budget in args.budgets:
            for method, start, keep in methods:
                settings = TrainSettings(
                    steps=None, time_limit=budget, device="cpu", keep_start=keep
                )
                trainer = Trainer(image, annotations[name], settings=settings, segmenter=start)
                segmenter = drain(trainer.run())
                steps = segmenter.history[-1]["steps"]
                nucleus, objects, _ = unet_objects(segmenter, image)
                rows.append(row(method, name, f"{budget:g}", steps, nucleus, objects, instances))
        if name == "corrections":
            continue
        probabilities, seconds = forest(image, annotations[name], edges=False, sigma_min=1)
        nucleus = probabilities.argmax(0) + 1 == NUCLEUS
        objects = find_objects(probabilities[NUCLEUS - 1], nucleus, ObjectSettings())
        rows.append(
            row("random forest", name, f"({seconds:.0f} s)", "–", nucleus, objects, instances)
        )
    headers = ["model", "annotations", "seconds", "steps", "object F1 @0.5", "mAP 0.5-0.9"]
    print()
    print(table(headers, rows))


if __name__ == "__main__":
    main()
