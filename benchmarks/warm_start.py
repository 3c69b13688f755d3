"""Start warm: the built-in nuclei model zero-shot and fine-tuned, beside training from scratch
and the random forest, on the same annotations, in one run.

The DSB 2018 nuclei sample shipped with the package (never used to make the built-in model) is
annotated on rows 0-127 as ``strip`` (touching nuclei kept apart by a background line),
``blobs`` (touching nuclei one blob) and ``corrections`` (only where the built-in model's
objects are wrong: the truth painted over each object of rows 0-127 that matches no true
nucleus at IoU 0.5, and over each true nucleus there that no object matches); rows 160-511,
never annotated, are scored: object F1 at IoU 0.5 and the mean AP over IoU 0.5-0.9, objects
cut by ``find_objects`` with the defaults. The zero-shot rows also score the sample rescaled
x0.5 and x2 (other magnifications), each predicted as the plugin predicts (rescaled to the
model's object size, ``--scale auto``) and at its own scale (``--scale 1``). ``strip x2`` is the
strip of the sample rescaled x2 (rows 0-255 annotated, 320-1023 scored), fine-tuned with and
without rescaling. Every U-Net prediction is made as the plugin makes it (``--scale auto``).
Each U-Net round trains for a time budget on the CPU with one thread fewer than the cores, as
the plugin. Fine-tuning runs with the default ``keep_start`` (the start model's sure answers
kept where nothing is annotated) and, beside it, with one setting changed (``--reference``; by
default without that rule, ``keep_start=0``, to show what it holds).

Usage: .venv/bin/python benchmarks/warm_start.py [--budgets 10 30 60]
       [--variants strip blobs corrections "strip x2"] [--reference keep_start=0]
"""

import argparse
import time

import numpy as np
import torch
from _common import PLUGIN_THREADS, machine, table
from scipy import ndimage
from time_to_model import ANNOTATED_ROWS, NUCLEUS, all_annotations, forest, scores

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.object_size import AUTO
from napari_unet.engine.objects import ObjectSettings, find_objects
from napari_unet.engine.predict import predict
from napari_unet.engine.progress import drain
from napari_unet.engine.scores import matches_one
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_instances
from napari_unet.storage.loading import load_model


def unet_objects(segmenter, image, scale=AUTO) -> tuple[np.ndarray, np.ndarray, float]:
    """(nucleus mask, objects, seconds to predict) with the plugin's defaults."""
    start = time.perf_counter()
    result = predict(segmenter, image, instances_of=NUCLEUS, objects=ObjectSettings(), scale=scale)
    return result.labels == NUCLEUS, result.instances, time.perf_counter() - start


def row(method, annotation, budget, steps, nucleus, objects, instances, rows=None) -> list:
    result = scores(nucleus, objects, instances, **({} if rows is None else {"rows": rows}))
    cells = [method, annotation, budget, steps, f"**{result['f1']:.3f}**", f"{result['map']:.3f}"]
    print(" | ".join(map(str, cells)), flush=True)
    return cells


def zoomed(image, instances, zoom: float) -> tuple[np.ndarray, np.ndarray]:
    """The sample and its truth rescaled by ``zoom`` (another magnification)."""
    if zoom == 1:
        return image, instances
    return (
        ndimage.zoom(image.astype(np.float32), zoom, order=1),
        ndimage.zoom(instances, zoom, order=0),
    )


def zero_shot(builtin, image, instances) -> list[list]:
    rows = []
    for zoom in (1.0, 0.5, 2.0):
        scaled, ids = zoomed(image, instances, zoom)
        for scale, how in ((AUTO, "rescaled"), (1.0, "own scale")):
            nucleus, objects, seconds = unet_objects(builtin, scaled, scale)
            label = f"nuclei model, zero-shot, x{zoom:g}, {how} ({seconds:.2f} s to predict)"
            scored = slice(int(160 * zoom), None)
            rows.append(row(label, "none", "0", "0", nucleus, objects, ids, scored))
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
    parser.add_argument(
        "--variants", nargs="*", default=["strip", "blobs", "corrections", "strip x2"]
    )
    parser.add_argument("--threads", type=int, default=PLUGIN_THREADS)
    parser.add_argument(
        "--reference",
        default="keep_start=0",
        help="FIELD=VALUE: the TrainSettings field the second fine-tuning row changes",
    )
    args = parser.parse_args()
    field, value = args.reference.split("=")
    reference = {field: float(value)}
    torch.set_num_threads(args.threads)
    print(machine())
    image, instances = nuclei(), nuclei_instances()
    annotations = all_annotations(instances)
    builtin = load_model("nuclei")
    rows = zero_shot(builtin, image, instances)
    annotations["corrections"] = corrections(builtin, image, instances)
    double, double_ids = zoomed(image, instances, 2.0)
    annotations["strip x2"] = from_instances(double_ids)
    annotations["strip x2"][2 * ANNOTATED_ROWS :] = 0
    for name in args.variants:
        data, ids, scored = image, instances, slice(160, None)
        methods = [("from the nuclei model", builtin, {})]
        if name == "strip x2":
            data, ids, scored = double, double_ids, slice(320, None)
            methods.append(("  not rescaled", builtin, {"rescale": False}))
        else:
            methods.append((f"  {field} {value}", builtin, reference))
        if name != "corrections":
            methods.append(("from scratch", None, {"keep_start": 0.0}))
        for budget in args.budgets:
            for method, start, changed in methods:
                settings = TrainSettings(steps=None, time_limit=budget, device="cpu", **changed)
                rescale = settings.rescale
                trainer = Trainer(data, annotations[name], settings=settings, segmenter=start)
                segmenter = drain(trainer.run())
                steps = segmenter.history[-1]["steps"]
                nucleus, objects, _ = unet_objects(segmenter, data, AUTO if rescale else 1.0)
                cells = (method, name, f"{budget:g}", steps, nucleus, objects, ids, scored)
                rows.append(row(*cells))
        if name in ("corrections", "strip x2"):
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
