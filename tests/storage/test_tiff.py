"""TIFF inputs: memory-mapped or read a page at a time, never modified, and read as tifffile
reads them, whatever their layout."""

import numpy as np
import pytest
import tifffile

from napari_unet.engine.errors import UNetError
from napari_unet.storage.tiff import open_tiff, read_tiff

from helpers import fingerprint

da = pytest.importorskip("dask.array")


def test_the_mapping_is_copy_on_write(tmp_path, image):
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, image)
    before = fingerprint(path)
    with open_tiff(path) as mapped:
        assert type(mapped) is np.memmap and mapped.flags.writeable
        mapped[:] = 7
        mapped.flush()
    assert fingerprint(path) == before


WRITES = {
    "uncompressed stack": ("uint16", (5, 40, 48), {}, da.Array),
    "uncompressed strips": ("uint16", (5, 40, 48), {"rowsperstrip": 8}, da.Array),
    "uncompressed 2D": ("float32", (40, 48), {}, np.memmap),
    "ImageJ stack, one header": (
        "uint16",
        (5, 40, 48),
        {"imagej": True, "truncate": True},
        np.memmap,
    ),
    "ImageJ ZCYX": (
        "uint8",
        (5, 2, 40, 48),
        {"imagej": True, "metadata": {"axes": "ZCYX"}},
        da.Array,
    ),
    "zlib stack": ("float32", (5, 40, 48), {"compression": "zlib"}, da.Array),
    "tiled stack": ("uint16", (5, 40, 48), {"tile": (16, 16)}, da.Array),
    "big-endian stack": ("uint16", (5, 40, 48), {"byteorder": ">"}, da.Array),
    "big-endian 2D": ("uint16", (40, 48), {"byteorder": ">"}, np.ndarray),
    "zlib RGB stack": ("uint8", (5, 40, 48, 3), {"compression": "zlib"}, da.Array),
    "zlib OME ZCYX": (
        "uint16",
        (5, 2, 40, 48),
        {"compression": "zlib", "ome": True, "metadata": {"axes": "ZCYX"}},
        da.Array,
    ),
    "zlib 2D": ("uint16", (40, 48), {"compression": "zlib"}, np.ndarray),
}


@pytest.mark.parametrize("case", WRITES)
def test_every_layout_reads_as_tifffile_reads_it(tmp_path, case):
    dtype, shape, options, kind = WRITES[case]
    data = np.random.default_rng(0).integers(0, 200, shape).astype(dtype)
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, data, **options)
    expected = tifffile.imread(path)
    with open_tiff(path) as image:
        assert type(image) is kind
        assert image.shape == expected.shape and image.dtype == expected.dtype
        np.testing.assert_array_equal(np.asarray(image[1]), expected[1])
        np.testing.assert_array_equal(np.asarray(image), expected)
    np.testing.assert_array_equal(read_tiff(path), expected)


TRUNCATED = {
    "zlib stack": {"compression": "zlib"},
    "zlib stack, no shape metadata": {"compression": "zlib", "metadata": None},
    "uncompressed stack": {},
    "uncompressed stack, no shape metadata": {"metadata": None},
    "zlib ImageJ stack": {"compression": "zlib", "imagej": True},
}


@pytest.mark.parametrize("case", TRUNCATED)
def test_a_truncated_stack_is_an_error_not_fewer_slices(tmp_path, case):
    data = np.random.default_rng(0).integers(0, 1000, (12, 64, 64)).astype("uint16")
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, data, **TRUNCATED[case])
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(UNetError, match="cannot read .*stack.tif as a TIFF image"):
        read_tiff(path)
    with (
        pytest.raises(UNetError, match="cannot read .*stack.tif as a TIFF image"),
        open_tiff(path) as image,
    ):
        np.asarray(image)


def test_a_file_of_several_images_is_an_error_not_its_first(tmp_path):
    path = tmp_path / "two.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.zeros((64, 64), np.uint8))
        tif.write(np.zeros((32, 40), np.uint8))
    message = r"two.tif holds 2 images \(\(64, 64\), \(32, 40\)\), not one"
    with pytest.raises(UNetError, match=message):
        read_tiff(path)
    with pytest.raises(UNetError, match=message), open_tiff(path):
        pass
