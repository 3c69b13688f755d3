import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.io import load_model, save_model

TINY_ARGS = [
    "--steps",
    "3",
    "--width",
    "4",
    "--depth",
    "2",
    "--patch-size",
    "64",
    "--batch-size",
    "2",
]


@pytest.fixture
def files(tmp_path, image, annotations):
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "annotations.tif", annotations)
    return tmp_path


def test_train_then_predict_writes_models_and_tiffs(files, capsys):
    model = files / "model.safetensors"
    assert (
        main(
            [
                "train",
                str(files / "image.tif"),
                str(files / "annotations.tif"),
                "-o",
                str(model),
                *TINY_ARGS,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "training on CPU" in out and "step 3/3" in out and f"wrote {model}" in out
    assert load_model(model).history[-1]["steps"] == 3

    code = main(
        [
            "predict",
            str(model),
            str(files / "image.tif"),
            "-o",
            str(files / "labels.tif"),
            "--probabilities",
            str(files / "prob.tif"),
            "--instances",
            str(files / "inst.tif"),
        ]
    )
    assert code == 0
    labels = tifffile.imread(files / "labels.tif")
    assert labels.shape == (512, 512) and set(np.unique(labels)) <= {1, 2}
    assert tifffile.imread(files / "prob.tif").shape == (2, 512, 512)
    assert tifffile.imread(files / "inst.tif").dtype == np.uint32


def test_fine_tuning_from_a_model_and_info(files, trained, capsys):
    start = save_model(trained, files / "start.safetensors")
    tuned = files / "tuned.safetensors"
    args = ["train", str(files / "image.tif"), str(files / "annotations.tif"), "-o", str(tuned)]
    assert main([*args, "--from", str(start), "--steps", "2"]) == 0
    assert len(load_model(tuned).history) == len(trained.history) + 1
    assert main(["info", str(tuned)]) == 0
    out = capsys.readouterr().out
    assert "round 2: 2 steps" in out and "classes: background, class 2" in out


def test_time_limit_alone_is_enough(files):
    model = files / "m.safetensors"
    args = ["train", str(files / "image.tif"), str(files / "annotations.tif"), "-o", str(model)]
    assert main([*args, "--time-limit", "1", "--width", "4", "--depth", "2"]) == 0
    assert load_model(model).history[-1]["seconds"] < 5


def bad_input_cases(files):
    image, annotations = str(files / "image.tif"), str(files / "annotations.tif")
    out = str(files / "out.safetensors")
    (files / "empty.tif").write_bytes(b"")
    (files / "notes.txt").write_text("not a model")
    tifffile.imwrite(files / "wrong.tif", np.zeros((100, 100), np.uint8))
    return [
        (["train", str(files / "missing.tif"), annotations, "-o", out], "does not exist"),
        (["train", str(files / "empty.tif"), annotations, "-o", out], "cannot read"),
        (["train", image, str(files / "wrong.tif"), "-o", out], "must match"),
        (["train", image, annotations, "-o", str(files / "notes.txt")], "not overwriting"),
        (
            ["train", image, annotations, "-o", out, "--from", str(files / "notes.txt")],
            "not a napari-unet model",
        ),
        (
            ["predict", str(files / "notes.txt"), image, "-o", str(files / "x.tif")],
            "not a napari-unet model",
        ),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(files, capsys):
    for args, message in bad_input_cases(files):
        before = sorted(p.name for p in files.iterdir())
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("napari-unet: error:") and message in err, err
        assert len(err.splitlines()) == 1
        assert sorted(p.name for p in files.iterdir()) == before
    assert (files / "notes.txt").read_text() == "not a model"


def test_the_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train" in result.stdout and "predict" in result.stdout and "demo" in result.stdout
