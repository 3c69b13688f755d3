"""The command line's sharing commands: bioimage.io export, packages as models, zarr volumes."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.storage.model_files import save_model


@pytest.fixture(scope="module")
def model_file(trained, tmp_path_factory):
    return save_model(trained, tmp_path_factory.mktemp("cli") / "model.safetensors")


def test_export_info_and_fine_tune_from_a_package(
    model_file, image, annotations, tmp_path, capsys
):
    pytest.importorskip("yaml")
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "annotations.tif", annotations)
    package = tmp_path / "nuclei.zip"
    args = ["export", str(model_file), "-o", str(package), "--author", "A. Tester"]
    assert main([*args, "--test-image", str(tmp_path / "image.tif")]) == 0
    assert package.stat().st_size > 0
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["info", str(package)]) == 0
    assert "classes: background, class 2" in capsys.readouterr().out
    tuned = tmp_path / "tuned.safetensors"
    train = ["train", str(tmp_path / "image.tif"), str(tmp_path / "annotations.tif")]
    assert main([*train, "-o", str(tuned), "--from", str(package), "--steps", "2"]) == 0
    assert tuned.exists()


def test_a_zarr_volume_is_predicted_into_ome_zarr(model_file, image, tmp_path, capsys):
    zarr = pytest.importorskip("zarr", minversion="3")
    source = tmp_path / "in.zarr"
    zarr.open_array(str(source), mode="w", shape=(2, 128, 160), dtype=image.dtype)[...] = np.stack(
        [image[:128, :160], image[128:256, 160:320]]
    )
    target = tmp_path / "out.ome.zarr"
    assert main(["predict", str(model_file), str(source), "-o", str(target), "--chunk", "64"]) == 0
    labels = zarr.open_group(str(target), mode="r")["0"][...]
    assert labels.shape == (2, 128, 160) and set(np.unique(labels)) <= {1, 2}
    assert main(["predict", str(model_file), str(source), "-o", str(target)]) == 2
    assert "exists" in capsys.readouterr().err
    extra = ["--probabilities", str(tmp_path / "p.tif")]
    assert main(["predict", str(model_file), str(source), "-o", str(tmp_path / "o"), *extra]) == 2
    assert "labels only" in capsys.readouterr().err


def test_cluster_options_need_a_zarr_input(model_file, image, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "image.tif", image)
    out = str(tmp_path / "labels.tif")
    args = ["predict", str(model_file), str(tmp_path / "image.tif"), "-o", out, "--workers", "2"]
    assert main(args) == 2
    assert "zarr" in capsys.readouterr().err
    assert main([*args[:-2], "--workers", "0"]) == 2


def test_the_test_image_is_the_corner_of_a_stacks_first_slice(model_file, image, tmp_path):
    pytest.importorskip("yaml")
    import io
    import zipfile

    stack = np.stack([image, image[::-1], image[:, ::-1], image.T, image[::-1, ::-1]])
    tifffile.imwrite(tmp_path / "stack.tif", stack, compression="zlib", photometric="minisblack")
    package = tmp_path / "p.zip"
    args = ["export", str(model_file), "-o", str(package), "--test-image"]
    assert main([*args, str(tmp_path / "stack.tif")]) == 0
    test_input = np.load(io.BytesIO(zipfile.ZipFile(package).read("test_input.npy")))
    np.testing.assert_array_equal(test_input[0, 0], image[:256, :256].astype(np.float32))
