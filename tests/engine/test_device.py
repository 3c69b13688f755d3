"""Device choice, precision and the GPU memory probes."""

import pytest
import torch

from napari_unet.engine.device import (
    autocast,
    cpu_has_bf16,
    cudnn_benchmark,
    describe,
    free_memory,
    is_out_of_memory,
    peak_memory,
    resolve_device,
)
from napari_unet.engine.errors import UNetError

MiB = 2**20
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_devices_are_resolved_or_refused_clearly():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert describe(torch.device("cpu")).startswith("CPU (")
    with pytest.raises(UNetError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UNetError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_out_of_memory_is_recognised_and_nothing_else():
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate: out of memory"))
    assert not is_out_of_memory(RuntimeError("shapes do not match"))
    assert not is_out_of_memory(ValueError("out of range"))


def test_cudnn_benchmark_is_restored_after_the_work_even_when_it_fails():
    before = torch.backends.cudnn.benchmark
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(KeyError), cudnn_benchmark(device):
        assert torch.backends.cudnn.benchmark == (device.type == "cuda" or before)
        raise KeyError
    assert torch.backends.cudnn.benchmark == before


def test_autocast_uses_bf16_on_cpus_that_compute_it_and_float32_elsewhere():
    conv = torch.nn.Conv2d(1, 2, 3)
    with autocast(torch.device("cpu")):
        out = conv(torch.ones(1, 1, 8, 8))
    assert out.dtype == (torch.bfloat16 if cpu_has_bf16() else torch.float32)


@pytest.mark.gpu
@needs_gpu
def test_peak_memory_measures_what_the_work_allocates_and_frees_the_cache():
    device = torch.device("cuda")
    free_before = free_memory(device)
    used = peak_memory(device, lambda: torch.empty(64 * MiB, dtype=torch.uint8, device=device))
    assert 64 * MiB <= used < 80 * MiB
    assert 0 < free_before <= torch.cuda.get_device_properties(device).total_memory
    assert free_memory(device) >= free_before - 8 * MiB  # the block went back to the cache


@pytest.mark.gpu
@needs_gpu
def test_peak_memory_is_none_when_the_work_runs_out_of_memory():
    def too_much():
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB")

    assert peak_memory(torch.device("cuda"), too_much) is None
    with pytest.raises(ValueError):
        peak_memory(torch.device("cuda"), lambda: int("not a number"))
