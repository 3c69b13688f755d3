"""zarr inputs are checked against their claims before anything proportional to them is read:
absurd shapes, volumes larger than the free space, tiny chunks and non-numeric values are
refused in one line, at once, from the API and the command line."""

import shutil
import time
from collections import namedtuple

import numpy as np
import pytest

from napari_unet.cli import main
from napari_unet.engine.errors import UNetError
from napari_unet.storage.model_files import save_model

zarr = pytest.importorskip("zarr", minversion="3")
from napari_unet.storage.volumes import VolumePredictor, output_bytes  # noqa: E402


@pytest.fixture(scope="module")
def model_path(trained, tmp_path_factory):
    return save_model(trained, tmp_path_factory.mktemp("model") / "m.safetensors")


def claimed(folder, shape, chunks, dtype="uint16"):
    """A zarr array that only claims its shape (no chunk written)."""
    path = folder / "claims.zarr"
    zarr.create_array(str(path), shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    return path


def refused_by_cli(capsys, model_path, source, output, match: str) -> None:
    start = time.perf_counter()
    assert main(["predict", str(model_path), str(source), "-o", str(output)]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert pytest.importorskip("re").search(match, err), err
    assert not output.exists()


@pytest.mark.parametrize(
    ("shape", "chunks", "dtype", "match"),
    [
        ((10**6, 10**6, 10**6), (1, 1024, 1024), "uint16", "its metadata is wrong"),
        ((2, 128, 128), (1, 1, 1), "uint8", "too small to be read .* rechunk it"),
        ((2, 0, 128), (1, 64, 64), "uint8", "empty array"),
        ((2, 64, 64), (1, 64, 64), "complex64", "an image holds numbers"),
    ],
)
def test_impossible_volumes_are_refused_at_once(
    tmp_path, capsys, model_path, shape, chunks, dtype, match
):
    source = claimed(tmp_path, shape, chunks, dtype)
    with pytest.raises(UNetError, match=match):
        VolumePredictor(model_path, source, tmp_path / "out.ome.zarr", device="cpu")
    refused_by_cli(capsys, model_path, source, tmp_path / "out.ome.zarr", match)


def test_a_volume_larger_than_the_free_space_is_refused_before_it_is_read(
    tmp_path, capsys, model_path, monkeypatch
):
    source = claimed(tmp_path, (100_000, 8192, 8192), (1, 1024, 1024))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(2**40, 0, 2**30))
    with pytest.raises(UNetError, match="outputs need about .* MiB but only 1024 MiB"):
        VolumePredictor(model_path, source, tmp_path / "out.ome.zarr", device="cpu")
    refused_by_cli(capsys, model_path, source, tmp_path / "out.ome.zarr", "only 1024 MiB")


def test_ordinary_chunks_and_sizes_are_accepted(tmp_path, model_path):
    path = tmp_path / "small.zarr"
    zarr.create_array(
        str(path),
        data=np.random.default_rng(0).integers(0, 255, (2, 96, 96), np.uint8),
        chunks=(1, 32, 32),
    )
    predictor = VolumePredictor(model_path, path, tmp_path / "out.ome.zarr", device="cpu")
    assert predictor.shape == (2, 96, 96)
    assert output_bytes((2, 96, 96)) >= 2 * 96 * 96


@pytest.mark.parametrize(
    ("multiscales", "match"),
    [
        ([{"datasets": []}], "damaged OME-Zarr metadata"),
        ([{"datasets": [{"path": "missing"}]}], "damaged OME-Zarr metadata"),
        ([{"datasets": [{"path": 0}]}], "damaged OME-Zarr metadata"),
        (["not a mapping"], "damaged OME-Zarr metadata"),
        ([{"datasets": [{"path": "0"}], "axes": ["z", "y"]}], "names 2 axes for an array of 3"),
        ({"a": 1}, "damaged OME-Zarr metadata"),
    ],
)
def test_damaged_ome_zarr_metadata_is_one_line(tmp_path, capsys, model_path, multiscales, match):
    path = tmp_path / "in.ome.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", data=np.zeros((2, 64, 64), np.uint8), chunks=(1, 64, 64))
    root.attrs["multiscales"] = multiscales
    refused_by_cli(capsys, model_path, path, tmp_path / "out.ome.zarr", match)
