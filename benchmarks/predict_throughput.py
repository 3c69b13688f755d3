"""Prediction throughput and peak memory on the CPU: the engine vs. the naive reference.

The stack is the Huh7 time-lapse (30 x 512 x 512, ../shared/data/ctc-huh7); a 120-slice stack is
the same frames four times. Each variant runs in its own process (so none shares another's peak
RSS), repeated and interleaved; runs during which other processes were busy are discarded when
enough quiet runs exist. The model is trained briefly on the shipped DSB2018 nuclei image (or
given with --model), so that the label agreement between ours and the reference means something.

Usage: .venv/bin/python benchmarks/predict_throughput.py [--data ../shared/data] [--repeats 3]
"""

import argparse
import json
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
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from napari_unet.io import load_model, save_model
from napari_unet.predict import predict
from napari_unet.samples import nuclei, nuclei_annotations
from napari_unet.train import Trainer, TrainSettings

VARIANTS = {
    "reference": ("naive reference (whole slices, fp32, NCHW, one at a time)", 30, {}),
    "ours": ("**ours (defaults: 512² tiles, batch 2, bf16, channels-last)**", 30, {}),
    "ours-batch1": ("ours, batch 1", 30, {"batch_size": 1}),
    "ours-batch4": ("ours, batch 4", 30, {"batch_size": 4}),
    "ours-tile256": ("ours, 256² tiles", 30, {"tile_size": 256}),
    "ours-folded": ("ours + BN folded into convs (prototype)", 30, {"fold": True}),
    "ours-folded-batch1": (
        "ours + BN folded, batch 1 (prototype)",
        30,
        {"fold": True, "batch_size": 1},
    ),
    "ours-120": ("ours, 120 slices (numpy in, numpy out)", 120, {}),
    "ours-120-lazy": ("ours, 120 slices (dask in, zarr store out)", 120, {}),
    "reference-plugin": ("naive reference, the plugin's threads", 30, {"threads": PLUGIN_THREADS}),
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
    if options.pop("fold", False):
        fold_batch_norm(segmenter.net)
    baseline = rss_mib("VmRSS")
    lazy = name.endswith("lazy")
    stack = read_stack(args.data, slices, lazy)
    start = time.perf_counter()
    if name.startswith("reference"):
        labels = reference_predict(segmenter, stack)
    else:
        store = Path(args.out).with_suffix(".zarr") if lazy else None
        labels = predict(segmenter, stack, device="cpu", store=store, **options).labels
    seconds = time.perf_counter() - start
    held = 0 if lazy else stack.nbytes + labels.nbytes
    if slices == 30:
        np.save(args.out, np.asarray(labels))
    result = {
        "seconds": seconds,
        "peak": rss_mib("VmHWM"),
        "baseline": baseline,
        "held": held / 2**20,
    }
    print(json.dumps(result))


def fold_batch_norm(net: nn.Module) -> None:
    """Fold each eval-mode batch norm into the convolution before it, in place."""
    net.eval()
    for block in net.modules():
        if isinstance(block, nn.Sequential):
            for i in range(len(block) - 1):
                if isinstance(block[i], nn.Conv2d) and isinstance(block[i + 1], nn.BatchNorm2d):
                    block[i] = fuse_conv_bn_eval(block[i], block[i + 1])
                    block[i + 1] = nn.Identity()


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


def run_child(name: str, model: Path, data: Path, out: Path) -> tuple[dict, bool]:
    command = [sys.executable, __file__, "--child", name, "--model", str(model)]
    command += ["--data", str(data), "--out", str(out)]
    with OtherLoad() as load:
        done = subprocess.run(command, capture_output=True, text=True)
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
    parser.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    print(f"Machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model = args.model
        if model is None:
            model = folder / "model.safetensors"
            train_model(model, args.train_seconds)
        runs: dict[str, list[tuple[dict, bool]]] = {name: [] for name in VARIANTS}
        deadline = time.perf_counter() + args.budget
        with OtherLoad() as load:
            while time.perf_counter() < deadline:
                pending = [n for n, r in runs.items() if sum(q for _, q in r) < args.repeats]
                if not pending:
                    break
                for name in pending:
                    runs[name].append(run_child(name, model, args.data, folder / f"{name}.npy"))
        reference = np.load(folder / "reference.npy")
        agreement = {
            name: float((np.load(folder / f"{name}.npy") == reference).mean())
            for name in VARIANTS
            if VARIANTS[name][1] == 30
        }
    print(report(runs, agreement))
    print(
        f"\nMedians over quiet runs (other processes < {QUIET} cores; where none was quiet, "
        f"all runs). Peak RSS: the child's maximum resident set; 'working' subtracts the RSS "
        f"after loading torch and the model, and the input and output arrays held in memory. "
        f"Over all runs {load.describe()}."
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
