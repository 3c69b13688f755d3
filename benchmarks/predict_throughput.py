"""Prediction throughput and peak memory on the CPU: the engine vs. the naive reference.

The stack is the Huh7 time-lapse (30 x 512 x 512, ../shared/data/ctc-huh7); a 120-slice stack is
the same frames four times. Each variant runs in its own process (so none shares another's peak
RSS), repeated and interleaved; runs during which other processes were busy are discarded when
enough quiet runs exist. The model is trained briefly on the shipped DSB2018 nuclei image (or
given with --model), so that the label agreement between ours and the reference means something.
``--baseline-src`` adds the engine of another checkout (its ``src`` folder, e.g. from
``git archive``) as "before" variants, run side by side with the others.

Usage: .venv/bin/python benchmarks/predict_throughput.py [--data ../shared/data] [--repeats 3]
       [--variants reference ours ...] [--baseline-src /tmp/old/src]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dask.array as da
import numpy as np
import tifffile
import torch
import zarr
from _common import (
    DATA,
    PLUGIN_THREADS,
    QUIET,
    THREADS,
    OtherLoad,
    ReferenceUNet,
    machine,
    median,
    table,
)

from napari_unet.engine.predict import predict
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_annotations
from napari_unet.storage.loading import load_model
from napari_unet.storage.model_files import save_model

VARIANTS = {
    "reference": ("naive reference (whole slices, fp32, NCHW, one at a time)", 30, {}),
    "before": ("engine before (--baseline-src), defaults", 30, {}),
    "ours": (
        "**ours (defaults: 512² tiles, batch 1, bf16, channels-last, BN folded, reader thread)**",
        30,
        {},
    ),
    "ours-batch2": ("ours, batch 2", 30, {"batch_size": 2}),
    "ours-tile256": ("ours, 256² tiles", 30, {"tile_size": 256}),
    "ours-probabilities": (
        "ours, labels + float16 probabilities",
        30,
        {"probabilities": True, "probability_dtype": "float16"},
    ),
    "ours-120": ("ours, 120 slices (numpy in, numpy out)", 120, {}),
    "ours-120-lazy": ("ours, 120 slices (dask in, zarr store out)", 120, {}),
    "reference-plugin": ("naive reference, the plugin's threads", 30, {"threads": PLUGIN_THREADS}),
    "before-plugin": (
        "engine before (--baseline-src), the plugin's threads",
        30,
        {"threads": PLUGIN_THREADS},
    ),
    "ours-plugin": (
        "**ours, the plugin's threads** (one fewer than the cores)",
        30,
        {"threads": PLUGIN_THREADS},
    ),
}


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB; unlike getrusage's maximum, the
    peak is not inherited from the parent that forked this process."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def read_stack(data: Path, slices: int, lazy: bool):
    path = data / "ctc-huh7" / "image.tif"
    if not lazy:
        frames = tifffile.imread(path)
        return np.concatenate([frames] * (slices // len(frames)))
    frames = zarr.open(tifffile.imread(path, aszarr=True), mode="r")
    one = da.from_zarr(frames, chunks=(1, *frames.shape[1:]))
    return da.concatenate([one] * (slices // frames.shape[0]))


def child(args) -> None:
    """Predict in this process and print seconds, peak RSS and output size as JSON."""
    name = args.child
    _, slices, options = VARIANTS[name]
    options = dict(options)
    torch.set_num_threads(options.pop("threads", THREADS))
    segmenter = load_model(args.model)
    baseline = rss_mib("VmRSS")
    lazy = name.endswith("lazy")
    stack = read_stack(args.data, slices, lazy)
    held, store = 0, None
    start = time.perf_counter()
    if name.startswith("reference"):
        labels = reference_predict(segmenter, stack)
    else:
        store = Path(args.out).with_suffix(".zarr") if lazy else None
        result = predict(segmenter, stack, device="cpu", store=store, **options)
        labels = result.labels
        held += 0 if lazy or result.probabilities is None else result.probabilities.nbytes
    seconds = time.perf_counter() - start
    if store is not None:
        shutil.rmtree(store)  # the engine never replaces a store: the next run needs the path
    held += 0 if lazy else stack.nbytes + labels.nbytes
    if slices == 30:
        np.save(args.out, np.asarray(labels))
    result = {
        "seconds": seconds,
        "peak": rss_mib("VmHWM"),
        "baseline": baseline,
        "held": held / 2**20,
    }
    print(json.dumps(result))


def reference_predict(segmenter, stack: np.ndarray) -> np.ndarray:
    """The naive way: the same weights in a plain float32 NCHW U-Net, one whole slice at a
    time, percentile-normalised like the engine does."""
    net = ReferenceUNet(segmenter.config.depth, segmenter.config.width)
    net.load_state_dict(segmenter.net.state_dict())
    net.eval()
    norm = segmenter.normalization
    low, high = np.percentile(stack, [norm.low_percentile, norm.high_percentile]).astype(
        np.float32
    )
    labels = np.zeros(stack.shape, np.uint8)
    with torch.no_grad():
        for z in range(len(stack)):
            image = (stack[z].astype(np.float32) - low) / max(high - low, np.float32(1e-6))
            logits = net(torch.from_numpy(image)[None, None])
            labels[z] = logits.argmax(1)[0].numpy() + 1
    return labels


def train_model(path: Path, seconds: float) -> None:
    settings = TrainSettings(steps=None, time_limit=seconds, device="cpu")
    run = Trainer(nuclei(), nuclei_annotations(128), settings=settings).run()
    while True:
        try:
            next(run)
        except StopIteration as done:
            save_model(done.value, path)
            return


def run_child(name: str, args, folder: Path) -> tuple[dict, bool]:
    command = [sys.executable, __file__, "--child", name, "--model", str(args.model)]
    command += ["--data", str(args.data), "--out", str(folder / f"{name}.npy")]
    env = dict(os.environ)
    if name.startswith("before"):
        env["PYTHONPATH"] = os.pathsep.join([str(args.baseline_src), env.get("PYTHONPATH", "")])
    with OtherLoad() as load:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1]), load.quiet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--repeats", type=int, default=3, help="quiet runs per variant")
    parser.add_argument("--budget", type=float, default=300, help="seconds of runs at most")
    parser.add_argument("--model", type=Path, help="a model file (default: train one briefly)")
    parser.add_argument("--train-seconds", type=float, default=20)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all")
    parser.add_argument(
        "--baseline-src", type=Path, help="another checkout's src folder: the 'before' variants"
    )
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    names = [n for n in args.variants or VARIANTS if args.baseline_src or "before" not in n]
    names = sorted(set(names) | {"reference"}, key=list(VARIANTS).index)
    if any(n.endswith("plugin") for n in names):
        names = sorted(set(names) | {"reference-plugin"}, key=list(VARIANTS).index)
    print(f"Machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        if args.model is None:
            args.model = folder / "model.safetensors"
            train_model(args.model, args.train_seconds)
        runs: dict[str, list[tuple[dict, bool]]] = {name: [] for name in names}
        deadline = time.perf_counter() + args.budget
        with OtherLoad() as load:
            while time.perf_counter() < deadline:
                pending = [n for n, r in runs.items() if sum(q for _, q in r) < args.repeats]
                if not pending:
                    break
                for name in pending:
                    if time.perf_counter() < deadline or not runs[name]:
                        runs[name].append(run_child(name, args, folder))
        reference = np.load(folder / "reference.npy")
        agreement = {
            name: float((np.load(folder / f"{name}.npy") == reference).mean())
            for name in names
            if VARIANTS[name][1] == 30
        }
    print(report(runs, agreement))
    print(
        f"\nMedians over quiet runs (other processes < {QUIET} cores; where none was quiet, "
        f"all runs). Peak RSS: the child's maximum resident set; 'working' subtracts the RSS "
        f"after loading torch and the model, and the input and output arrays held in memory "
        f"(probabilities included). Over all runs {load.describe()}."
    )


def report(runs: dict, agreement: dict) -> str:
    quiet = {
        name: [r for r, q in results if q] or [r for r, _ in results]
        for name, results in runs.items()
    }
    seconds = {name: median([r["seconds"] for r in kept]) for name, kept in quiet.items()}
    rows = []
    for name, results in runs.items():
        title, slices, _ = VARIANTS[name]
        megapixels = slices * 512 * 512 / 1e6
        baseline = "reference-plugin" if name.endswith("plugin") else "reference"
        ratio = (megapixels / seconds[name]) / (30 * 512 * 512 / 1e6 / seconds[baseline])
        peak = median([r["peak"] for r in quiet[name]])
        working = median([r["peak"] - r["baseline"] - r["held"] for r in quiet[name]])
        rows.append(
            [
                title,
                slices,
                f"{seconds[name]:.2f}",
                f"{megapixels / seconds[name]:.2f}",
                f"{ratio:.2f}×",
                f"{peak:.0f}",
                f"{working:.0f}",
                f"{100 * agreement[name]:.2f}%" if name in agreement else "–",
                f"{sum(q for _, q in results)}/{len(results)}",
            ]
        )
    headers = ["variant", "slices", "seconds", "Mpx/s", "vs. reference", "peak RSS MiB"]
    headers += ["working MiB", "labels = reference", "quiet runs"]
    return table(headers, rows)


if __name__ == "__main__":
    main()
