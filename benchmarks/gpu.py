"""GPU benchmark: training step vs. naive vs. the real loop, the "auto" configuration,
prediction vs. a naive whole-slice loop, and time to quality on the nuclei sample.

Needs only torch, numpy, scipy and the package (no napari, Qt, dask or zarr):

    PYTHONPATH=src python benchmarks/gpu.py            # about 4 minutes on an H100
    PYTHONPATH=src python benchmarks/gpu.py --device cpu --sections quality --seconds 30 60

Without a GPU (and without ``--device cpu``) it prints one "no GPU" line and exits 0.
"""

import argparse
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from _common import ReferenceUNet, median, table
from torch.utils.flop_counter import FlopCounterMode

from napari_unet.engine.device import autocast, prepare, resolve_device
from napari_unet.engine.losses import IGNORE, weighted_cross_entropy
from napari_unet.engine.model import UNet, UNetConfig
from napari_unet.engine.predict import Predictor
from napari_unet.engine.train import CPU_ARCHITECTURE, GPU_ARCHITECTURE, Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_annotations, nuclei_instances

SCORED_ROWS = slice(160, None)
NUCLEUS = 2
SECTIONS = ("step", "auto", "predict", "quality")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(call, device: torch.device, warmup: int = 5, repeats: int = 20) -> float:
    """Median wall time of ``call`` with the device drained before and after each call."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        call()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return median(times)


def random_batch(batch: int, patch: int, device: torch.device, channels_last: bool):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, patch, patch, generator=generator)
    targets = torch.randint(0, 2, (batch, patch, patch), generator=generator)
    targets[:, ::7] = IGNORE
    weights = 1 + torch.rand(batch, patch, patch, generator=generator)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return images.to(device, memory_format=layout), targets.to(device), weights.to(device)


def pure_step(device, depth, width, batch, patch):
    """The engine's step alone on batches already on the device: channels-last, autocast."""
    torch.manual_seed(0)
    net = prepare(UNet(UNetConfig(depth=depth, width=width)), device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    images, targets, weights = random_batch(batch, patch, device, channels_last=True)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device):
            logits = net(images)
        weighted_cross_entropy(logits, targets, weights).backward()
        optimizer.step()

    return step


def naive_step(device, depth, width, batch, patch):
    """The same step as a first script would write it: fp32, NCHW, no autocast."""
    torch.manual_seed(0)
    net = ReferenceUNet(depth, width).to(device).train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    images, targets, weights = random_batch(batch, patch, device, channels_last=False)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(images), targets, ignore_index=IGNORE, reduction="none")
        ((loss * weights).sum() / (targets != IGNORE).sum()).backward()
        optimizer.step()

    return step


def conv_flops(depth, width, batch, patch) -> float:
    """Convolution FLOPs of forward + backward for one batch (counted on the meta device,
    which computes nothing)."""
    net = ReferenceUNet(depth, width).to("meta")
    images, targets, _ = random_batch(batch, patch, torch.device("meta"), False)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(images), targets, ignore_index=IGNORE).backward()
    return float(counter.get_total_flops())


def matmul_peak(device: torch.device) -> float:
    """FLOP/s of the best large bf16 matrix product: the card's practical bf16 peak."""
    size = 8192 if device.type == "cuda" else 2048
    a = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    b = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    return 2 * size**3 / seconds_per_call(lambda: a @ b, device, warmup=3, repeats=10)


def loop_rate(image, annotations, device, seconds: float, **sizes) -> tuple[float, dict]:
    """Pixels per second of ``Trainer.run()`` after its first second (start-up excluded),
    and the history entry (batch and patch it used)."""
    settings = TrainSettings(steps=None, time_limit=seconds, device=device.type, **sizes)
    trainer = Trainer(image, annotations, settings=settings)
    events = []
    run = trainer.run()
    while True:
        try:
            events.append(next(run))
        except StopIteration as done:
            history = done.value.history[-1]
            break
    start = next(e for e in events if e.elapsed >= 1.0)
    end = events[-1]
    pixels = (end.step - start.step) * history["batch_size"] * history["patch_size"] ** 2
    return pixels / max(end.elapsed - start.elapsed, 1e-9), history


def step_section(device, peak: float, loop_seconds: float) -> str:
    depth, width = GPU_ARCHITECTURE["depth"], GPU_ARCHITECTURE["width"]
    image, annotations = nuclei(), nuclei_annotations(128)
    rows = []
    for batch, patch in ((8, 128), (32, 256)):
        flops = conv_flops(depth, width, batch, patch)
        pure = seconds_per_call(pure_step(device, depth, width, batch, patch), device)
        naive = seconds_per_call(naive_step(device, depth, width, batch, patch), device)
        loop, _ = loop_rate(
            image, annotations, device, loop_seconds, batch_size=batch, patch_size=patch
        )
        pixels = batch * patch * patch
        rows.append(
            [
                f"batch {batch}, {patch}²",
                f"{pixels / naive / 1e6:.1f}",
                f"{pixels / pure / 1e6:.1f}",
                f"{naive / pure:.2f}×",
                f"{loop / 1e6:.1f}",
                f"{100 * loop * pure / pixels:.0f}%",
                f"{flops / pure / 1e12:.1f}",
                f"{100 * flops / pure / peak:.0f}%",
            ]
        )
    headers = ["configuration (depth 4, width 32)", "naive Mpx/s", "pure step Mpx/s"]
    headers += ["step vs. naive", "loop Mpx/s", "loop / step", "step TFLOP/s", "of bf16 peak"]
    return "**Training: pure step vs. naive vs. the real loop**\n\n" + table(headers, rows)


def auto_section(device, loop_seconds: float) -> str:
    rate, history = loop_rate(nuclei(), nuclei_annotations(128), device, loop_seconds)
    rows = [[history["batch_size"], f"{history['patch_size']}²", f"{rate / 1e6:.1f}"]]
    return "**Training: the automatic configuration**\n\n" + table(
        ["batch (auto)", "patch (auto)", "loop Mpx/s"], rows
    )


def huge_stack(slices: int) -> np.ndarray:
    """``slices`` 512² slices made from the nuclei sample (flipped and rolled)."""
    base = nuclei()
    out = np.empty((slices, *base.shape), base.dtype)
    for i in range(slices):
        view = base[::-1] if i % 2 else base
        out[i] = np.roll(view[:, ::-1] if i % 3 else view, 37 * i, axis=i % 2)
    return out


def predict_section(device, segmenter, slices: int) -> str:
    stack = huge_stack(slices)
    config = segmenter.config
    reference = ReferenceUNet(config.depth, config.width).to(device).eval()
    reference.load_state_dict(segmenter.net.state_dict())
    normalization = segmenter.normalization.for_image(stack[..., None])

    def naive():
        labels = np.empty(stack.shape, np.uint8)
        with torch.no_grad():
            for i, plane in enumerate(stack):
                x = normalization.apply(plane[..., None].astype(np.float32))[..., 0]
                logits = reference(torch.from_numpy(x)[None, None].to(device))
                labels[i] = (logits.argmax(1)[0] + 1).to("cpu", torch.uint8).numpy()
        return labels

    def ours():
        run = Predictor(segmenter, stack, device=device.type).run()
        while True:
            try:
                next(run)
            except StopIteration as done:
                return done.value.labels

    times = {"naive": [], "ours": []}
    results = {}
    for _ in range(3):
        for name, call in (("naive", naive), ("ours", ours)):
            synchronize(device)
            start = time.perf_counter()
            results[name] = call()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    pixels = stack.size
    same = (results["naive"] == results["ours"]).mean()
    rows = []
    for name, label in (
        ("naive", "naive whole slices, fp32, one at a time"),
        ("ours", "ours (Predictor)"),
    ):
        seconds = min(times[name])
        rows.append(
            [
                label,
                f"{seconds:.2f}",
                f"{pixels / seconds / 1e6:.0f}",
                f"{min(times['naive']) / seconds:.2f}×",
                f"{100 * same:.2f}%" if name == "ours" else "–",
            ]
        )
    headers = ["variant", "seconds", "Mpx/s", "vs. naive", "labels = naive"]
    title = f"**Prediction: {slices}×512×512, depth {config.depth}, width {config.width}**"
    return title + "\n\n" + table(headers, rows) + "\n\nBest of 3 runs each, interleaved."


def object_scores(labels: np.ndarray, objects: np.ndarray, instances: np.ndarray) -> tuple:
    """Pixel Dice of the nucleus class and object F1 at IoU 0.5, on the scored rows."""
    guess, truth = labels[SCORED_ROWS] == NUCLEUS, instances[SCORED_ROWS] > 0
    dice = 2 * (guess & truth).sum() / max(guess.sum() + truth.sum(), 1)
    found = np.unique(objects[SCORED_ROWS], return_inverse=True)[1].ravel()
    true = np.unique(instances[SCORED_ROWS], return_inverse=True)[1].ravel()
    both = (found > 0) & (true > 0)
    stride = int(true.max()) + 1
    pairs, shared = np.unique(
        found[both].astype(np.int64) * stride + true[both], return_counts=True
    )
    union = np.bincount(found)[pairs // stride] + np.bincount(true)[pairs % stride] - shared
    matched = int((shared / union > 0.5).sum())
    return dice, 2 * matched / max(int(found.max()) + int(true.max()), 1)


def quality_section(device, durations, old_rule_durations, settings: dict):
    image, annotations, instances = nuclei(), nuclei_annotations(128), nuclei_instances()
    rows, kept = [], None
    runs = [("average", s) for s in durations] + [("best", s) for s in old_rule_durations]
    for keep, seconds in runs:
        options = {"steps": None, "time_limit": seconds, "device": device.type, "keep": keep}
        trainer = Trainer(image, annotations, settings=TrainSettings(**{**options, **settings}))
        run, improved = trainer.run(), 0
        while True:
            try:
                event = next(run)
                improved = event.step if event.improved else improved
            except StopIteration as done:
                segmenter = done.value
                break
        result = Predictor(segmenter, image, instances_of=NUCLEUS, device=device.type).run()
        while True:
            try:
                next(result)
            except StopIteration as done:
                prediction = done.value
                break
        dice, f1 = object_scores(prediction.labels, prediction.instances, instances)
        history = segmenter.history[-1]
        rule = "weight average (new)" if keep == "average" else "best validation Dice (old)"
        rows.append(
            [
                rule,
                seconds,
                f"{history['steps']} ({improved})",
                f"{history['batch_size']}×{history['patch_size']}²",
                f"{dice:.3f}",
                f"**{f1:.3f}**",
            ]
        )
        if keep == "average" and kept is None:
            kept = segmenter
    headers = ["weights kept", "train s", "steps (kept)", "batch", "pixel Dice", "object F1 @0.5"]
    title = "**Time to quality: nuclei sample, rows 0-127 annotated, scored on rows 160-511**"
    return title + "\n\n" + table(headers, rows), kept


def describe(device: torch.device) -> str:
    cuda = torch.version.cuda or "none"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        return f"{name} ({memory:.0f} GiB); torch {torch.__version__}, CUDA {cuda}"
    threads = torch.get_num_threads()
    return f"{platform.processor() or 'CPU'}, {threads} threads; torch {torch.__version__}"


def parse_setting(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return name, kind(value)
        except ValueError:
            pass
    return name, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument("--seconds", nargs="+", type=float, default=[10, 30, 60])
    parser.add_argument(
        "--old-rule-seconds",
        nargs="*",
        type=float,
        default=[10, 30],
        help="durations for keep=best",
    )
    parser.add_argument("--loop-seconds", type=float, default=8.0)
    parser.add_argument("--slices", type=int, default=120)
    parser.add_argument("--threads", type=int, help="torch threads (CPU runs)")
    parser.add_argument("--set", type=parse_setting, action="append", default=[])
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"no GPU: CUDA is not available here (torch {torch.__version__}); nothing measured")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.backends.cudnn.benchmark = True
    print(f"Device: {describe(device)}\n")
    peak = matmul_peak(device)
    print(f"bf16 peak (the best large bf16 matmul): {peak / 1e12:.1f} TFLOP/s\n")
    started = time.perf_counter()
    segmenter = None
    if "quality" in args.sections:
        text, segmenter = quality_section(
            device, args.seconds, args.old_rule_seconds, dict(args.set)
        )
        print(text + "\n", flush=True)
    if "step" in args.sections:
        print(step_section(device, peak, args.loop_seconds) + "\n", flush=True)
    if "auto" in args.sections:
        print(auto_section(device, args.loop_seconds) + "\n", flush=True)
    if "predict" in args.sections:
        if segmenter is None:
            _, segmenter = quality_section(device, [10], [], {})
        print(predict_section(device, segmenter, args.slices) + "\n", flush=True)
    architecture = GPU_ARCHITECTURE if device.type == "cuda" else CPU_ARCHITECTURE
    total = time.perf_counter() - started
    print(f"Default architecture on this device: {architecture}; total {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
