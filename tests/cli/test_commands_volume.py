"""predict --volume: objects of a TIFF stack cut in 3D; a series stays per slice; bad volume
options end in one line."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.storage.model_files import save_model

from helpers import one_error_line


@pytest.fixture
def files(tmp_path, image, trained):
    tifffile.imwrite(
        tmp_path / "stack.tif", np.stack([image[:160, :200]] * 3), photometric="minisblack"
    )
    tifffile.imwrite(tmp_path / "image.tif", image[:160, :200])
    save_model(trained, tmp_path / "model.safetensors")
    return tmp_path


def predict(files, image: str, *options: str) -> list[str]:
    return ["predict", str(files / "model.safetensors"), str(files / image), *options]


def test_a_volume_gets_one_id_through_z_and_a_series_one_per_slice(files):
    out = ["-o", str(files / "labels.tif"), "--overwrite"]
    volume, series = files / "volume.tif", files / "series.tif"
    options = ["--instances", str(volume), "--volume", "--z-spacing", "2"]
    assert main(predict(files, "stack.tif", *out, *options)) == 0
    assert main(predict(files, "stack.tif", *out, "--instances", str(series))) == 0
    volume, series = tifffile.imread(volume), tifffile.imread(series)
    assert volume.shape == series.shape == (3, 160, 200) and volume.max() > 10
    assert (volume[0] == volume[1]).all() and (volume[0] == volume[2]).all()
    ids = [set(np.unique(s)) - {0} for s in series]
    assert ids[0] and not ids[0] & ids[1] and not ids[1] & ids[2]


def test_a_2d_image_given_as_a_volume_is_one_line(files, capsys):
    out = ["-o", str(files / "labels.tif"), "--instances", str(files / "i.tif")]
    assert main(predict(files, "image.tif", *out, "--volume")) == 2
    one_error_line(capsys, "a 2D image is not a volume")
    assert not (files / "labels.tif").exists() and not (files / "i.tif").exists()


def test_a_z_spacing_without_volume_is_one_line(files, capsys):
    out = ["-o", str(files / "labels.tif"), "--z-spacing", "2"]
    assert main(predict(files, "stack.tif", *out)) == 2
    one_error_line(capsys, "add --volume")
    assert not (files / "labels.tif").exists()


def test_a_bare_instances_flag_needs_a_zarr_volume(files, capsys):
    out = ["-o", str(files / "labels.tif"), "--instances"]
    assert main(predict(files, "stack.tif", *out, "--volume")) == 2
    one_error_line(capsys, "--instances needs a TIFF file")


@pytest.fixture
def zarr_volume(files, image):
    zarr = pytest.importorskip("zarr", minversion="3")
    stack = np.stack([image[2 * k : 128 + 2 * k, :160] for k in range(3)])
    source = files / "in.zarr"
    zarr.open_array(str(source), mode="w", shape=stack.shape, dtype=stack.dtype)[...] = stack
    return source


def test_objects_of_a_zarr_volume_go_into_its_ome_zarr_output(files, zarr_volume, capsys):
    zarr = pytest.importorskip("zarr", minversion="3")
    target = files / "out.ome.zarr"
    options = ["-o", str(target), "--chunk", "64", "--volume", "--z-spacing", "2", "--instances"]
    assert main(predict(files, "in.zarr", *options)) == 0
    output = zarr.open_group(str(target), mode="r")
    labels, objects = output["0"][...], output["labels/instances/0"][...]
    assert objects.shape == labels.shape == (3, 128, 160) and objects.max() > 5
    assert ((objects > 0) <= (labels == 2)).all()
    column = objects[:, 64, 80]
    assert len(set(column[column > 0])) <= 1  # one id through z where a nucleus is


def test_objects_of_a_zarr_input_need_volume_and_no_file(files, zarr_volume, capsys):
    target = ["-o", str(files / "out.ome.zarr")]
    assert main(predict(files, "in.zarr", *target, "--instances")) == 2
    one_error_line(capsys, "add --volume")
    assert main(predict(files, "in.zarr", *target, "--volume", "--instances", "i.tif")) == 2
    one_error_line(capsys, "without a file name")
    assert not (files / "out.ome.zarr").exists()
