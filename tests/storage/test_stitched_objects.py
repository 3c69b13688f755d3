"""Objects of a zarr volume cut block by block and stitched: the same as cut on the whole
volume up to a renumbering, in one process and on a 2-worker local cluster."""

import numpy as np
import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.engine.predict import Predictor
from napari_unet.storage import stitched_objects
from napari_unet.storage.model_files import save_model

from helpers import run_to_end

zarr = pytest.importorskip("zarr", minversion="3")
from napari_unet.storage.volumes import VolumePredictor, cluster_client, metadata

CHUNK = 96


def same_up_to_renumbering(a: np.ndarray, b: np.ndarray, off: float = 1e-4) -> bool:
    """One id of ``a`` for each id of ``b``, on all but a fraction ``off`` of the voxels: the
    volume is predicted chunk by chunk, so its probabilities may differ from the whole
    image's in the last bits, and a voxel on a tie of the watershed may go either way."""
    pairs, counts = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1, return_counts=True)
    main = {}
    for (ours, theirs), count in zip(pairs.T, counts, strict=True):
        if count > main.get(theirs, (0, 0))[1]:
            main[theirs] = (ours, count)
    kept = [ours for ours, _ in main.values()]
    agree = sum(count for _, count in main.values())
    return len(set(kept)) == len(kept) == len(np.unique(a)) and a.size - agree <= off * a.size


@pytest.fixture(scope="module")
def volume(image, tmp_path_factory):
    """A 4-slice volume of the nuclei image (drifting by a few pixels), 200x230 pixels."""
    folder = tmp_path_factory.mktemp("volume")
    stack = np.stack([image[3 * k : 200 + 3 * k, 2 * k : 230 + 2 * k] for k in range(4)])
    zarr.open_array(str(folder / "in.zarr"), mode="w", shape=stack.shape, dtype=stack.dtype)[
        ...
    ] = stack
    return folder / "in.zarr", stack


@pytest.fixture(scope="module")
def model_path(trained, tmp_path_factory):
    return save_model(trained, tmp_path_factory.mktemp("model") / "m.safetensors")


@pytest.fixture(scope="module")
def whole(trained, volume):
    predictor = Predictor(trained, volume[1], instances_of=2, volume=True, z_spacing=2.0)
    return run_to_end(predictor.run())[1].instances


def instances(target) -> np.ndarray:
    return zarr.open_group(str(target), mode="r")["labels/instances/0"][...]


def test_blocks_stitched_in_this_process_equal_the_whole_volume(
    volume, model_path, whole, tmp_path, monkeypatch
):
    monkeypatch.setattr(stitched_objects, "BLOCK_SLICES", 2)  # blocks meet in z too
    target = tmp_path / "out.ome.zarr"
    predictor = VolumePredictor(
        model_path, volume[0], target, chunk=CHUNK, device="cpu", instances_of=2, z_spacing=2.0
    )
    events, _ = run_to_end(predictor.run())
    blocks = 2 * 3 * 3  # 4 slices by 2, 200 and 230 pixels by 96
    assert events[-1] == (len(events), len(events)) == (4 * 3 * 3 + 2 * blocks,) * 2
    found = instances(target)
    assert found.dtype == np.uint32 and found.shape == whole.shape
    assert whole.max() > 20 and found.max() == whole.max()
    assert same_up_to_renumbering(found, whole)
    assert not (target / stitched_objects.SCRATCH).exists()
    assert metadata(target / "labels") == {"labels": ["instances"]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_two_local_workers_stitch_the_same_objects(volume, model_path, whole, tmp_path):
    pytest.importorskip("distributed")
    target = tmp_path / "cluster.ome.zarr"
    predictor = VolumePredictor(
        model_path, volume[0], target, chunk=CHUNK, device="cpu", instances_of=2, z_spacing=2.0
    )
    client = cluster_client(workers=2)
    try:
        run_to_end(predictor.run(client))
    finally:
        client.close()
        client.cluster.close()
    assert same_up_to_renumbering(instances(target), whole)


def test_objects_of_a_2d_zarr_image_or_with_bad_settings_are_refused(
    image, model_path, volume, tmp_path
):
    flat = tmp_path / "flat.zarr"
    zarr.open_array(str(flat), mode="w", shape=(128, 128), dtype=image.dtype)[...] = image[
        :128, :128
    ]
    with pytest.raises(UNetError, match="^a 2D image is not a volume"):
        VolumePredictor(model_path, flat, tmp_path / "o.ome.zarr", instances_of=2)
    with pytest.raises(UNetError, match="z spacing"):
        VolumePredictor(model_path, volume[0], tmp_path / "o.ome.zarr", z_spacing=float("nan"))
    with pytest.raises(UNetError, match="class id of the instances"):
        VolumePredictor(model_path, volume[0], tmp_path / "o.ome.zarr", instances_of=9)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.zarr"]
