"""What the benchmark scripts share: the machine, the load on it, tables, the naive reference.

The naive reference U-Net is a plain re-implementation of the engine's architecture (same
layers, same parameter names, so it can load the engine's weights), run the way a first
PyTorch script would: float32, NCHW (contiguous) tensors, no autocast.
"""

import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
THREADS = torch.get_num_threads()
PLUGIN_THREADS = max(1, min(THREADS, os.cpu_count() or 1) - 1)
"""torch's default thread count, and the plugin's: one fewer, leaving a core to napari."""


def machine() -> str:
    """One line: CPU, cores, bf16 support, torch version and threads; no GPU here."""
    model = platform.processor() or "unknown CPU"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line
    except OSError:
        pass
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return (
        f"{model}, {os.cpu_count()} cores{', AVX512-BF16' if bf16 else ''}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        "GPU: none on this machine (no GPU numbers)"
    )


QUIET = 0.25


class OtherLoad:
    """How many cores other processes kept busy while the block ran, from /proc/stat.

    Processes in ``pids`` (load we start on purpose) count as our own.
    """

    def __init__(self, *pids: int):
        self.pids = pids

    def __enter__(self) -> "OtherLoad":
        self.start = (_busy_seconds(), _own_seconds(self.pids), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        busy, own, wall = _busy_seconds(), _own_seconds(self.pids), time.perf_counter()
        self.cores = max(0.0, (busy - self.start[0]) - (own - self.start[1])) / (
            wall - self.start[2]
        )

    @property
    def quiet(self) -> bool:
        """Whether other processes used less than QUIET cores."""
        return self.cores < QUIET

    def describe(self) -> str:
        return f"other processes kept {self.cores:.2f} of {os.cpu_count()} cores busy on average"


def _busy_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds(pids: tuple[int, ...]) -> float:
    own = os.times()
    seconds = own.user + own.system + own.children_user + own.children_system
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def table(headers: list[str], rows: list[list]) -> str:
    """A markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def median(values) -> float:
    return statistics.median(values)


def spread(values) -> str:
    """Interquartile range as a percentage of the median."""
    if len(values) < 4:
        return "n/a"
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{100 * (q3 - q1) / statistics.median(values):.0f}%"


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = _double_conv(2 * cout, cout)


class ReferenceUNet(nn.Module):
    """The naive reference: a plain U-Net with "same" padding and batch norm."""

    def __init__(self, depth: int = 3, width: int = 16, in_channels: int = 1, n_classes: int = 2):
        super().__init__()
        widths = [width * 2**i for i in range(depth + 1)]
        self.inc = _double_conv(in_channels, width)
        self.downs = nn.ModuleList(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(a, b))
            for a, b in zip(widths, widths[1:], strict=False)
        )
        self.ups = nn.ModuleList(
            _Up(b, a) for a, b in reversed(list(zip(widths, widths[1:], strict=False)))
        )
        self.outc = nn.Conv2d(width, n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up.conv(torch.cat([skips.pop(), up.up(x)], dim=1))
        return self.outc(x)
