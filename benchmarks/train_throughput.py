"""Training throughput on the CPU: the engine vs. the naive reference U-Net, side by side.

Pixels per second through forward + backward + optimiser step (AdamW, the weighted
cross-entropy), for the default CPU configuration and for the paper's width (64). Every
variant is timed in the same process, interleaved round by round, and the median step time is
reported; GFLOP/s count the convolutions of forward and backward (torch's FlopCounterMode)
and are compared with the best matrix product this CPU does in the same precision.

Usage: .venv/bin/python benchmarks/train_throughput.py [--blocks 5] [--budget 240] [--threads 1]
"""

import argparse
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from _common import (
    PLUGIN_THREADS,
    QUIET,
    THREADS,
    OtherLoad,
    ReferenceUNet,
    machine,
    median,
    spread,
    table,
)
from torch.utils.flop_counter import FlopCounterMode

from napari_unet.engine.device import autocast, prepare
from napari_unet.engine.losses import IGNORE, weighted_cross_entropy
from napari_unet.engine.model import UNet, UNetConfig
from napari_unet.engine.train import (
    CPU_ARCHITECTURE,
    CPU_SIZE,
    NEW_MODEL_RATE,
    Trainer,
    TrainSettings,
)
from napari_unet.samples import nuclei, nuclei_annotations

CPU = torch.device("cpu")
DEFAULTS = TrainSettings()
SECONDS_PER_BLOCK = 0.6


@dataclass
class Variant:
    """One way of training: ``step()`` does one optimiser step."""

    section: str
    name: str
    step: object
    pixels: int
    flops: float
    bf16: bool
    threads: int = THREADS
    repeats: int = 1
    blocks: list[tuple[bool, list[float]]] = field(default_factory=list)

    @property
    def quiet_blocks(self) -> int:
        return sum(quiet for quiet, _ in self.blocks)

    @property
    def times(self) -> list[float]:
        """Step times from quiet blocks, or from all blocks when none was quiet."""
        quiet = [t for q, times in self.blocks if q for t in times]
        return quiet or [t for _, times in self.blocks for t in times]


def batch_of(batch: int, patch: int, channels_last: bool):
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 1, patch, patch, generator=generator)
    if channels_last:
        images = images.to(memory_format=torch.channels_last)
    targets = torch.randint(0, 2, (batch, patch, patch), generator=generator)
    targets[:, ::7] = IGNORE
    weights = 1 + torch.rand(batch, patch, patch, generator=generator)
    return images, targets, weights


def engine_step(
    width: int, depth: int, batch: int, patch: int, bf16: bool = True, fused: bool = False
):
    """The engine's training step, from its public parts: channels-last, bf16 autocast;
    ``fused`` tries AdamW's fused implementation (the engine uses the default one)."""
    torch.manual_seed(0)
    net = prepare(UNet(UNetConfig(depth=depth, width=width)), CPU).train()
    optimizer = torch.optim.AdamW(
        net.parameters(),
        lr=NEW_MODEL_RATE,
        weight_decay=DEFAULTS.weight_decay,
        fused=fused or None,
    )
    images, targets, weights = batch_of(batch, patch, channels_last=True)
    precision = autocast(CPU) if bf16 else contextlib.nullcontext()

    def step():
        optimizer.zero_grad(set_to_none=True)
        with precision:
            logits = net(images)
        weighted_cross_entropy(logits, targets, weights).backward()
        optimizer.step()

    return step


def reference_step(width: int, depth: int, batch: int, patch: int, bf16: bool = False):
    """The naive reference: float32, NCHW, no autocast (or NCHW with bf16 autocast)."""
    torch.manual_seed(0)
    net = ReferenceUNet(depth, width).train()
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=NEW_MODEL_RATE, weight_decay=DEFAULTS.weight_decay
    )
    images, targets, weights = batch_of(batch, patch, channels_last=False)

    def step():
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = net(images)
        loss = F.cross_entropy(logits.float(), targets, ignore_index=IGNORE, reduction="none")
        ((loss * weights).sum() / (targets != IGNORE).sum()).backward()
        optimizer.step()

    return step


def trainer_step(batch: int, patch: int):
    """One step of the engine's Trainer as the plugin runs it: crops, augmentation,
    the weight average, validation every ``eval_every`` steps, on the shipped nuclei image
    (rows 0-127)."""
    settings = TrainSettings(steps=10**9, device="cpu", batch_size=batch, patch_size=patch)
    run = Trainer(nuclei(), nuclei_annotations(128), settings=settings).run()
    return lambda: next(run)


def training_flops(width: int, depth: int, batch: int, patch: int) -> float:
    """Convolution FLOPs of forward + backward for one batch."""
    net = ReferenceUNet(depth, width).train()
    images, targets, weights = batch_of(batch, patch, channels_last=False)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(net(images), targets, ignore_index=IGNORE).backward()
    return float(counter.get_total_flops())


def variants() -> list[Variant]:
    depth, width = CPU_ARCHITECTURE["depth"], CPU_ARCHITECTURE["width"]
    batch, patch = CPU_SIZE["batch_size"], CPU_SIZE["patch_size"]
    out = []

    def add(section, name, step, w, d, b, p, bf16, threads=THREADS):
        flops = training_flops(w, d, b, p)
        out.append(Variant(section, name, step, b * p * p, flops, bf16, threads))

    default = f"default CPU configuration (depth {depth}, width {width}, batch {batch}, {patch}²)"
    args = (width, depth, batch, patch)
    add(default, "naive reference (fp32, NCHW)", reference_step(*args), *args, False)
    add(default, "reference + bf16 autocast (NCHW)", reference_step(*args, True), *args, True)
    add(default, "ours, fp32 channels-last", engine_step(*args, bf16=False), *args, False)
    add(default, "**ours (engine step)**", engine_step(*args), *args, True)
    add(
        default,
        "ours, whole Trainer step (+patches, augment, average, validation)",
        trainer_step(batch, patch),
        *args,
        True,
    )
    add(default, "ours + fused AdamW", engine_step(*args, fused=True), *args, True)

    single = f"{PLUGIN_THREADS} thread(s), as the plugin trains (it leaves one core to napari)"
    one = {"threads": PLUGIN_THREADS}
    add(single, "naive reference (fp32, NCHW)", reference_step(*args), *args, False, **one)
    add(single, "**ours (engine step)**", engine_step(*args), *args, True, **one)
    add(single, "ours, whole Trainer step", trainer_step(batch, patch), *args, True, **one)

    other = f"one 256² patch per step, the same pixels (depth {depth}, width {width})"
    large = (width, depth, 1, 256)
    add(other, "naive reference (fp32, NCHW)", reference_step(*large), *large, False)
    add(other, "**ours (engine step)**", engine_step(*large), *large, True)
    add(other, "ours, whole Trainer step", trainer_step(1, 256), *large, True)

    paper = f"paper's width 64 (depth {depth}, batch {batch}, {patch}²)"
    wide = (64, depth, batch, patch)
    add(paper, "naive reference (fp32, NCHW)", reference_step(*wide), *wide, False)
    add(paper, "**ours (engine step)**", engine_step(*wide), *wide, True)

    shapes = "ours: other batch, patch, width, depth"
    for b, p in ((2, 256), (4, 256), (8, 128)):
        add(shapes, f"batch {b}, {p}²", engine_step(width, depth, b, p), width, depth, b, p, True)
    add(shapes, "width 32", engine_step(32, depth, batch, patch), 32, depth, batch, patch, True)
    add(shapes, "depth 4", engine_step(width, 4, batch, patch), width, 4, batch, patch, True)
    return out


def measure(variants: list[Variant], blocks: int, budget: float, *pids: int) -> None:
    """Warm up, then time every variant in blocks of about SECONDS_PER_BLOCK, round by round,
    until each has ``blocks`` quiet blocks (other processes idle) or ``budget`` seconds pass."""
    for v in variants:
        torch.set_num_threads(v.threads)
        for _ in range(3):
            v.step()
        start = time.perf_counter()
        v.step()
        v.repeats = max(1, round(SECONDS_PER_BLOCK / (time.perf_counter() - start)))
    deadline = time.perf_counter() + budget
    while time.perf_counter() < deadline:
        pending = [v for v in variants if v.quiet_blocks < blocks]
        if not pending:
            break
        for v in pending:
            torch.set_num_threads(v.threads)
            with OtherLoad(*pids) as load:
                times = []
                for _ in range(v.repeats):
                    start = time.perf_counter()
                    v.step()
                    times.append(time.perf_counter() - start)
            v.blocks.append((load.quiet, times))
    torch.set_num_threads(THREADS)


def matmul(dtype: torch.dtype, size: int = 2048) -> Variant:
    """A square matrix product: its best rate is this CPU's practical peak in ``dtype``."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    return Variant("peak", f"{dtype} matmul", lambda: a @ b, 0, 2.0 * size**3, False)


def rows(variants: list[Variant], peaks: dict[bool, float], reference: Variant | None):
    body = []
    for v in variants:
        seconds = median(v.times)
        gflops = v.flops / seconds / 1e9
        body.append(
            [
                v.name,
                "bf16" if v.bf16 else "fp32",
                v.threads,
                f"{v.pixels / seconds / 1e6:.3f}",
                f"{median(reference.times) / seconds:.2f}×" if reference else "–",
                f"{gflops:.1f}",
                f"{100 * gflops * 1e9 / peaks[v.bf16]:.0f}%",
                f"{1000 * seconds:.0f}",
                spread(v.times),
                f"{v.quiet_blocks}/{len(v.blocks)}",
            ]
        )
    return body


HEADERS = ["variant", "convs in", "threads", "Mpx/s", "vs. reference", "GFLOP/s", "of peak"]
HEADERS += ["ms/step", "IQR", "quiet blocks"]


def report(variants: list[Variant], peaks: dict[bool, float]) -> str:
    lines = []
    for section in dict.fromkeys(v.section for v in variants):
        members = [v for v in variants if v.section == section]
        reference = members[0] if "reference" in members[0].name else None
        lines += [f"**{section}**", "", table(HEADERS, rows(members, peaks, reference)), ""]
    return "\n".join(lines)


def under_load(blocks: int, budget: float, peaks: dict[bool, float]) -> str:
    """Ours with torch's threads vs. the plugin's while a busy-looping process holds a core."""
    depth, width = CPU_ARCHITECTURE["depth"], CPU_ARCHITECTURE["width"]
    args = (width, depth, CPU_SIZE["batch_size"], CPU_SIZE["patch_size"])
    flops = training_flops(*args)
    pixels = CPU_SIZE["batch_size"] * CPU_SIZE["patch_size"] ** 2
    section = "ours while another process keeps one core busy (a `while True: pass` child)"
    pair = [
        Variant(
            section,
            f"ours, {THREADS} threads (torch's default)",
            engine_step(*args),
            pixels,
            flops,
            True,
        ),
        Variant(
            section,
            f"ours, {PLUGIN_THREADS} thread(s) (the plugin's)",
            engine_step(*args),
            pixels,
            flops,
            True,
            threads=PLUGIN_THREADS,
        ),
    ]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        measure(pair, blocks, budget, busy.pid)
    finally:
        busy.kill()
        busy.wait()
    return f"**{section}**\n\n" + table(HEADERS, rows(pair, peaks, None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", type=int, default=5, help="quiet timing blocks per variant")
    parser.add_argument(
        "--budget", type=float, default=240, help="seconds of timing at most, all variants"
    )
    parser.add_argument(
        "--threads", type=int, help="run every variant on this many threads (a loaded machine)"
    )
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    products = [matmul(torch.float32), matmul(torch.bfloat16)]
    all_variants = variants()
    for v in products + all_variants if args.threads else []:
        v.threads = args.threads
    with OtherLoad() as load:
        measure(products + all_variants, args.blocks, args.budget)
    peaks = {i == 1: v.flops / min(v.times) for i, v in enumerate(products)}
    print(report(all_variants, peaks))
    print(
        f"Peak: the best 2048³ matrix product, measured among the variants: fp32 "
        f"{peaks[False] / 1e9:.0f} GFLOP/s, bf16 {peaks[True] / 1e9:.0f} GFLOP/s. "
        "GFLOP/s: convolutions of forward + backward. Medians of the step times in quiet "
        f"blocks (other processes < {QUIET} cores; where no block was quiet, all blocks); "
        f"over the whole run {load.describe()}.\n"
    )
    if not args.threads:
        print(under_load(args.blocks, args.budget / 4, peaks))


if __name__ == "__main__":
    main()
