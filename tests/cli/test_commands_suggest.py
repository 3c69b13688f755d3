"""``predict --uncertainty`` and ``--suggest N``: how unsure the model is, written as a TIFF,
and where annotating next helps most, one region per line, annotated areas left out."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.engine.predict import predict
from napari_unet.storage.model_files import save_model


@pytest.fixture
def files(tmp_path, trained, image):
    model = save_model(trained, tmp_path / "model.safetensors")
    stack = np.stack([image[:192, :256], image[192:384, 256:]])
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    return model, tmp_path / "stack.tif", stack


def regions(out: str) -> list[list[float]]:
    return [list(map(float, line.split())) for line in out.splitlines() if line[:1].isdigit()]


def test_uncertainty_is_written_and_regions_are_printed(files, tmp_path, capsys, trained):
    model, image, stack = files
    argv = ["predict", str(model), str(image), "-o", str(tmp_path / "l.tif")]
    uncertainty = tmp_path / "u.tif"
    assert main([*argv, "--uncertainty", str(uncertainty), "--suggest", "3"]) == 0
    written = tifffile.imread(uncertainty)
    assert written.dtype == np.float32 and written.shape == stack.shape
    expected = predict(trained, stack, labels=False, uncertainty=True, device="cpu").uncertainty
    np.testing.assert_allclose(written, expected, atol=1e-5)
    out = capsys.readouterr().out
    assert "# slice y x size score" in out
    ranked = regions(out)
    assert 1 <= len(ranked) <= 3
    for z, y, x, size, score in ranked:
        assert z in (0, 1) and size == 256 and 0 < score <= 1
        assert y == 0 and x == 0  # regions are clipped to the 192x256 slices
    assert [r[-1] for r in ranked] == sorted((r[-1] for r in ranked), reverse=True)


def test_suggestions_leave_annotated_areas_out(files, tmp_path, capsys):
    model, image, stack = files
    annotations = np.zeros(stack.shape, np.uint8)
    annotations[0] = 1  # slice 0 annotated in full
    tifffile.imwrite(tmp_path / "a.tif", annotations)
    argv = ["predict", str(model), str(image), "-o", str(tmp_path / "l.tif")]
    assert main([*argv, "--suggest", "4", "--region-size", "64"]) == 0
    assert {r[0] for r in regions(capsys.readouterr().out)} == {0, 1}
    argv += ["--overwrite", "--suggest", "4", "--region-size", "64"]
    assert main([*argv, "--annotations", str(tmp_path / "a.tif")]) == 0
    ranked = regions(capsys.readouterr().out)
    assert ranked and {r[0] for r in ranked} == {1}
    assert not (tmp_path / "u.tif").exists()


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        (["--suggest", "0"], "number of regions must be"),
        (["--suggest", "2", "--region-size", "4"], "region size"),
        (["--annotations", "a.tif"], "add --suggest N"),
        (["--suggest", "2", "--annotations", "wrong.tif"], "give the annotations of this image"),
        (["--suggest", "2", "--annotations", "slice.tif"], "give the annotations of this image"),
        (["--uncertainty", "exists.tif"], "already exists"),
    ],
)
def test_bad_suggest_and_uncertainty_options_are_one_line(files, tmp_path, capsys, extra, match):
    model, image, _ = files
    (tmp_path / "exists.tif").write_bytes(b"mine")
    tifffile.imwrite(tmp_path / "wrong.tif", np.zeros((5, 5), np.uint8))
    tifffile.imwrite(tmp_path / "slice.tif", np.zeros((192, 256), np.uint8))  # of one slice
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((2, 192, 256), np.uint8))
    extra = [str(tmp_path / e) if e.endswith(".tif") else e for e in extra]
    argv = ["predict", str(model), str(image), "-o", str(tmp_path / "l.tif"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err, err
    assert (tmp_path / "exists.tif").read_bytes() == b"mine"
    assert not (tmp_path / "l.tif").exists()
