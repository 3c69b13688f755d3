"""Big volumes: chunked prediction in one process vs. on a local dask.distributed cluster.

Predicts the Huh7 time-lapse (30x512x512, from ../shared/data, or the nuclei sample stacked
when absent) written as OME-Zarr, with an untrained default CPU U-Net (speed does not depend on
the weights), once in this process and once on a LocalCluster of 2 single-threaded workers (a
new cluster per volume length), at two volume lengths, and prints wall time, throughput and the
peak memory of each process that predicted (this process's peak only grows). Peak memory per
worker should depend on the chunk, not on the volume.

    .venv/bin/python benchmarks/chunked.py [--slices 8 30] [--chunk 256]
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr
from _common import DATA, machine

from napari_unet.engine.images import Normalization
from napari_unet.engine.model import UNetConfig
from napari_unet.engine.segmenter import Segmenter
from napari_unet.samples import nuclei
from napari_unet.storage.model_files import save_model
from napari_unet.storage.volumes import VolumePredictor, cluster_client


def volume(slices: int) -> np.ndarray:
    path = DATA / "ctc-huh7" / "image.tif"
    if path.exists():
        import tifffile

        data = tifffile.imread(path)
    else:
        data = np.stack([nuclei()] * 30)
    return np.concatenate([data] * (slices // len(data) + 1))[:slices]


def write_ome_zarr(data: np.ndarray, path: Path) -> Path:
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", data=data, chunks=(1, 512, 512))
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    return path


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slices", type=int, nargs="+", default=[8, 30])
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="unet-chunked-"))
    segmenter = Segmenter.new(UNetConfig(1, 2, 3, 16))
    segmenter.normalization = Normalization()
    model = save_model(segmenter, folder / "model.safetensors")
    print(f"machine: {machine()}\n")
    print(f"chunk {args.chunk}x{args.chunk}, model depth 3 width 16, 1 thread per process\n")
    print("| slices | where | wall s | Mpx/s | vs. one process | peak RSS per process (MiB) |")
    print("|---|---|---|---|---|---|")
    for slices in args.slices:
        data = volume(slices)
        source = write_ome_zarr(data, folder / f"in{slices}.ome.zarr")
        pixels = data.size
        timings = {}
        client = cluster_client(workers=2)
        for where, on in (("this process", None), ("2 local workers", client)):
            target = folder / f"out{slices}-{len(timings)}.ome.zarr"
            start = time.perf_counter()
            run = VolumePredictor(model, source, target, chunk=args.chunk, device="cpu").run(on)
            for _ in run:
                pass
            seconds = time.perf_counter() - start
            timings[where] = seconds
            if on is None:
                peaks = f"{peak_mib():.0f}"
            else:
                rss = on.run(peak_mib)
                peaks = ", ".join(f"{v:.0f}" for v in rss.values())
            ratio = timings["this process"] / seconds
            print(
                f"| {slices} | {where} | {seconds:.1f} | {pixels / seconds / 1e6:.2f} | "
                f"{ratio:.2f}x | {peaks} |",
                flush=True,
            )
        client.close()
        client.cluster.close()


if __name__ == "__main__":
    sys.exit(main())
