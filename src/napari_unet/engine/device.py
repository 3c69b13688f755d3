"""Where the network runs and in which precision: CUDA, then MPS, then the CPU."""

import contextlib
import functools
import platform

import torch

from .errors import UNetError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name``; "auto" picks CUDA, then MPS, then the CPU."""
    if name not in DEVICES:
        raise UNetError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UNetError("no CUDA GPU is available; use device 'auto' or 'cpu'")
    if name == "mps" and not _mps_available():
        raise UNetError("Apple MPS is not available; use device 'auto' or 'cpu'")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """A short human-readable name, e.g. "CUDA (NVIDIA H100)" or "CPU (8 threads, bf16)"."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS"
    precision = ", bf16" if cpu_has_bf16() else ""
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads > 1 else ''}{precision})"


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where autocast pays."""
    if platform.system() != "Linux":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision where it pays: bf16 on CUDA and bf16-capable CPUs."""
    if device.type == "cuda":
        dtype = torch.bfloat16 if cuda_has_bf16(device) else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    if device.type == "cpu" and cpu_has_bf16():
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def needs_grad_scaler(device: torch.device) -> bool:
    """float16 autocast (older GPUs) needs loss scaling; bf16 does not."""
    return device.type == "cuda" and not cuda_has_bf16(device)


def cuda_has_bf16(device: torch.device) -> bool:
    """Whether the GPU computes bfloat16 natively (Ampere and newer). ``is_bf16_supported``
    also says yes for older cards that only emulate it, where cuDNN has no bf16 kernels."""
    return torch.cuda.get_device_capability(device)[0] >= 8


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is the device running out of memory."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def prepare(net: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``net`` to ``device`` in channels-last layout, which the conv kernels prefer."""
    return net.to(device=device, memory_format=torch.channels_last)


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device):
    """Let cuDNN pick the fastest convolutions for the (few, fixed) batch shapes, and restore
    the global setting afterwards."""
    if device.type != "cuda":
        yield
        return
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def free_memory(device: torch.device) -> int:
    """Bytes this process can still allocate on a CUDA device (its own cached blocks count)."""
    free, _ = torch.cuda.mem_get_info(device)
    return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)


def peak_memory(device: torch.device, run) -> int | None:
    """Bytes of CUDA memory ``run()`` takes at its peak beyond what was allocated before;
    None when it runs out of memory."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    try:
        run()
        torch.cuda.synchronize(device)
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        return None
    finally:
        torch.cuda.empty_cache()
    return max(torch.cuda.max_memory_allocated(device) - before, 0)
