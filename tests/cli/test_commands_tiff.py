"""``predict`` on TIFF files: memory-mapped or read a page at a time, never modified, predicted
exactly as the same stack held in memory, and a damaged page one error line."""

import sys

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.engine.errors import UNetError
from napari_unet.engine.predict import predict
from napari_unet.storage import tiff as tiff_input
from napari_unet.storage.model_files import save_model
from napari_unet.storage.tiff import open_tiff

from helpers import fingerprint

da = pytest.importorskip("dask.array")


@pytest.fixture(scope="module")
def stack(image) -> np.ndarray:
    """Six different 256x256 uint16 slices of the nuclei image (tifffile writes a stack of
    three or four slices as one page of samples, of five or more as a page per slice)."""
    quarters = [image[y : y + 256, x : x + 256] for y in (0, 256) for x in (0, 256)]
    return np.stack([*quarters, image[::-2, ::2], image[1::2, ::-2]])


@pytest.fixture
def model(tmp_path, trained):
    return save_model(trained, tmp_path / "model.safetensors")


def test_raw_and_compressed_tiffs_predict_exactly_as_the_array(
    tmp_path, stack, model, trained, monkeypatch
):
    raw, packed = tmp_path / "raw.tif", tmp_path / "packed.tif"
    tifffile.imwrite(raw, stack)
    tifffile.imwrite(packed, stack, compression="zlib")
    before = {path: fingerprint(path) for path in (raw, packed)}
    expected = predict(trained, stack, probabilities=True, device="cpu")
    assert set(np.unique(expected.labels)) == {1, 2}

    def predicts_as_expected(path, kind):
        with open_tiff(path) as image:
            assert type(image) is kind
        labels, probabilities = tmp_path / "labels.tif", tmp_path / "probabilities.tif"
        args = ["predict", str(model), str(path), "-o", str(labels), "--device", "cpu"]
        assert main([*args, "--probabilities", str(probabilities), "--overwrite"]) == 0
        np.testing.assert_array_equal(tifffile.imread(labels), expected.labels)
        np.testing.assert_array_equal(tifffile.imread(probabilities), expected.probabilities)
        assert fingerprint(path) == before[path]

    predicts_as_expected(raw, da.Array)
    predicts_as_expected(packed, da.Array)
    with monkeypatch.context() as without_dask:
        without_dask.setitem(sys.modules, "dask.array", None)
        predicts_as_expected(raw, np.memmap)
        predicts_as_expected(packed, np.ndarray)


def test_a_compressed_stack_is_read_one_page_at_a_time(tmp_path, stack, model, monkeypatch):
    path = tmp_path / "packed.tif"
    tifffile.imwrite(path, stack, compression="zlib")
    pages, pages_per_read = [], []
    read_page, read = tiff_input._Pages._page, tiff_input._Pages.__getitem__

    def counted_page(self, number, shape):
        pages.append(number)
        return read_page(self, number, shape)

    def counted(self, key):
        before = len(pages)
        data = read(self, key)
        pages_per_read.append(len(pages) - before)
        return data

    monkeypatch.setattr(tiff_input._Pages, "_page", counted_page)
    monkeypatch.setattr(tiff_input._Pages, "__getitem__", counted)
    args = ["predict", str(model), str(path), "-o", str(tmp_path / "l.tif"), "--device", "cpu"]
    assert main(args) == 0
    assert set(pages_per_read) == {1}
    assert sorted(set(pages)) == list(range(len(stack))) and len(pages) <= 2 * len(stack)


def test_a_damaged_page_is_one_error_line_and_writes_nothing(tmp_path, stack, model, capsys):
    path = tmp_path / "packed.tif"
    tifffile.imwrite(path, stack, compression="zlib")
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages[2].dataoffsets[0]
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * 64)
    with open_tiff(path) as image:
        np.asarray(image[0])
        with pytest.raises(UNetError, match="cannot read"):
            np.asarray(image[2])
    labels = tmp_path / "labels.tif"
    assert main(["predict", str(model), str(path), "-o", str(labels), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-unet-loop: error: cannot read") and len(err.splitlines()) == 1
    assert not labels.exists() and sorted(p.name for p in tmp_path.iterdir()) == [
        "model.safetensors",
        "packed.tif",
    ]
