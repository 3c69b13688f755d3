"""The built-in starting models: shipped, documented, found by name, usable offline, and
fine-tuned (with classes added) by the project's own Trainer."""

import socket
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from napari_unet.engine.errors import ModelFileError
from napari_unet.engine.objects import ObjectSettings
from napari_unet.engine.predict import predict
from napari_unet.engine.scores import object_f1
from napari_unet.engine.segmenter import Segmenter
from napari_unet.engine.train import TrainSettings
from napari_unet.models import BUILTIN, builtin_name, builtin_path, card, resolve
from napari_unet.samples import nuclei, nuclei_instances
from napari_unet.storage.loading import load_model
from napari_unet.storage.model_files import save_model
from napari_unet.storage.output_files import reserve

from helpers import train

SCORED = slice(160, None)


@pytest.fixture(scope="module")
def builtin() -> Segmenter:
    return load_model("nuclei")


def test_every_builtin_model_ships_with_weights_and_a_card():
    assert "nuclei" in BUILTIN
    for name in BUILTIN:
        assert builtin_path(name).is_file()
        text = card(name)
        for part in ("What it segments", "not for", "Data", "How it was made", "Scores"):
            assert part in text, part
        assert "MIT" in text and "mnfinder" in text and "SCORES" not in text


def test_the_nuclei_model_records_how_it_was_made(builtin):
    assert builtin.class_names == ["background", "nucleus"]
    assert builtin.in_channels == 1
    made = [entry["pretraining"] for entry in builtin.history if "pretraining" in entry]
    assert made, "no pretraining record"
    assert len(made) == len(builtin.history)  # every round
    for record in made:
        data = record["data"]
        assert data["package"].startswith("mnfinder") and len(data["wheel_sha256"]) == 64
        assert all("dsb" not in name.lower() for name in data["images"])
    assert made[-1]["test_object_f1"]["mean"] > 0.5


def test_the_nuclei_model_segments_the_sample_before_any_annotation(builtin):
    image = nuclei()
    result = predict(builtin, image, instances_of=2, objects=ObjectSettings(), device="cpu")
    assert object_f1(result.instances[SCORED], nuclei_instances()[SCORED]) > 0.8


@pytest.mark.parametrize("zoom", [2.0, 0.5])
def test_the_nuclei_model_segments_the_sample_at_other_magnifications(builtin, zoom):
    """Rescaled to the model's object size ("auto"), the sample zoomed in or out is segmented
    about as well as at its own size, without any annotation."""
    image = ndimage.zoom(nuclei(), zoom)
    truth = ndimage.zoom(nuclei_instances(), zoom, order=0)
    objects = ObjectSettings()
    result = predict(builtin, image, instances_of=2, objects=objects, scale="auto", device="cpu")
    assert result.instances.shape == image.shape
    assert result.object_diameter is not None and result.scale != 1
    assert result.scale == pytest.approx(1 / zoom, rel=0.35)
    scored = slice(int(SCORED.start * zoom), None)
    assert object_f1(result.instances[scored], truth[scored]) > 0.8


def test_nothing_is_downloaded(builtin, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = load_model("nuclei")
    assert predict(model, nuclei()[:128, :128], device="cpu").labels.max() == 2


def test_a_file_of_the_builtin_name_wins(tmp_path, monkeypatch, trained):
    monkeypatch.chdir(tmp_path)
    assert resolve("nuclei") == builtin_path("nuclei")
    with reserve(["nuclei"]) as output:  # a model file named like the built-in, no suffix
        data = save_model(trained, tmp_path / "mine.safetensors").read_bytes()
        output.commit([lambda file: file.write(data)])
    assert resolve("nuclei") == Path("nuclei")
    assert load_model("nuclei").config == trained.config


def test_builtin_weights_are_known_by_name_and_other_files_are_not(tmp_path, monkeypatch):
    monkeypatch.chdir(builtin_path("nuclei").parent)
    assert builtin_name(builtin_path("nuclei")) == "nuclei"
    assert builtin_name(Path("nuclei.safetensors")) == "nuclei"  # relative, the same file
    assert builtin_name(tmp_path / "nuclei.safetensors") is None
    assert builtin_name(Path("nuclei")) is None


def test_a_folder_of_the_builtin_name_does_not_hide_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nuclei").mkdir()  # the user's nuclei images, say
    assert resolve("nuclei") == builtin_path("nuclei")
    assert load_model("nuclei").class_names == ["background", "nucleus"]


def test_unknown_names_are_missing_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match="nucleii does not exist"):
        load_model("nucleii")


def test_growing_the_head_keeps_the_old_classes_predictions(builtin):
    grown = builtin.with_classes(["background", "nucleus", "mitosis"])
    assert grown.n_classes == 3 and grown.class_names[-1] == "mitosis"
    assert builtin.n_classes == 2  # the original is left alone
    image = nuclei()[:256, :256]
    before = predict(builtin, image, probabilities=True, device="cpu")
    after = predict(grown, image, probabilities=True, device="cpu")
    np.testing.assert_array_equal(before.labels, after.labels)
    assert after.probabilities[2].max() < 1e-3
    np.testing.assert_allclose(before.probabilities, after.probabilities[:2], atol=1e-3)


def test_fine_tuning_adds_the_classes_the_annotations_add(builtin, annotations):
    annotations[40:60, 300:330] = 3
    settings = TrainSettings(steps=2, patch_size=64, batch_size=2, device="cpu")
    tuned = train(nuclei(), annotations, settings, segmenter=builtin, class_names=None)
    assert tuned.n_classes == 3 and tuned.class_names == ["background", "nucleus", "class 3"]
    assert builtin.n_classes == 2
    assert tuned.config.depth == builtin.config.depth


def test_the_command_line_names_builtin_models(tmp_path, monkeypatch, capsys):
    import tifffile

    from napari_unet.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["models"]) == 0
    assert "nuclei:" in capsys.readouterr().out
    assert main(["info", "nuclei"]) == 0
    out = capsys.readouterr().out
    assert "What it segments" in out and "Classes: background, nucleus" in out
    tifffile.imwrite(tmp_path / "image.tif", nuclei()[:128, :128])
    command = ["predict", "nuclei", "image.tif", "-o", "labels.tif", "--instances", "o.tif"]
    assert main(command) == 0
    assert tifffile.imread(tmp_path / "o.tif").max() > 3
