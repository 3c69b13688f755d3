"""Where a CPU training step spends its time: the engine's step and the naive reference's,
side by side, by family of operators (torch.profiler's self CPU time).

Usage: .venv/bin/python benchmarks/step_profile.py [--steps 20]
"""

import argparse
import time
from collections import defaultdict

import torch
from _common import machine, table
from torch.profiler import ProfilerActivity, profile
from train_throughput import CPU_ARCHITECTURE, CPU_SIZE, engine_step, reference_step

FAMILIES = [
    ("convolutions (forward + backward, transposed too)", ("conv",)),
    ("batch norm", ("batch_norm",)),
    ("ReLU", ("threshold", "relu", "clamp_min")),
    ("max pooling", ("max_pool",)),
    ("concatenation", ("aten::cat",)),
    ("loss", ("nll", "softmax", "cross_entropy")),
    ("AdamW", ("Optimizer", "_foreach", "lerp", "addcdiv", "addcmul", "sqrt", "aten::mul_")),
]
OTHER = "casts, allocation, autograd, the rest"


def family(name: str) -> str:
    for label, keys in FAMILIES:
        if any(key in name for key in keys):
            return label
    return OTHER


def profiled(step, steps: int) -> tuple[dict[str, float], float]:
    """Milliseconds per step by family (self time), and the wall time per step."""
    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - start) / steps * 1000
    times: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        times[family(event.key)] += event.self_cpu_time_total / steps / 1000
    return times, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    shape = (CPU_ARCHITECTURE["width"], CPU_ARCHITECTURE["depth"])
    shape += (CPU_SIZE["batch_size"], CPU_SIZE["patch_size"])
    ours, ours_wall = profiled(engine_step(*shape), args.steps)
    reference, reference_wall = profiled(reference_step(*shape), args.steps)
    rows = [
        [label, f"{ours[label]:.1f}", f"{reference[label]:.1f}"]
        for label in [label for label, _ in FAMILIES] + [OTHER]
    ]
    rows.append(["**whole step (wall, profiled)**", f"{ours_wall:.1f}", f"{reference_wall:.1f}"])
    print(machine())
    print(
        f"\ndefault CPU configuration (depth {shape[1]}, width {shape[0]}, batch {shape[2]}, "
        f"{shape[3]}²), {torch.get_num_threads()} threads, ms per step\n"
    )
    headers = ["part of the step", "ours (bf16, channels-last)", "naive reference (fp32)"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
