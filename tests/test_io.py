import json

import numpy as np
import pytest
import safetensors.torch
import torch

from napari_unet.errors import ModelFileError
from napari_unet.io import load_model, read_config, save_model
from napari_unet.predict import predict


def test_save_then_load_predicts_identically(trained, image, tmp_path):
    path = save_model(trained, tmp_path / "nuclei.safetensors")
    loaded = load_model(path)
    assert loaded.class_names == trained.class_names
    assert loaded.config == trained.config
    assert loaded.history == trained.history
    assert loaded.normalization.to_dict() == trained.normalization.to_dict()
    before = predict(trained, image, probabilities=True).probabilities
    after = predict(loaded, image, probabilities=True).probabilities
    assert np.array_equal(before, after)


def test_config_is_readable_json_with_versions(trained, tmp_path):
    path = save_model(trained, tmp_path / "m.safetensors")
    config = read_config(path)
    assert config["architecture"]["width"] == trained.config.width
    assert config["class_names"] == trained.class_names
    assert config["napari_unet_version"]
    assert config["history"][0]["steps"] == 80
    header_length = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_length])
    assert json.loads(header["__metadata__"]["napari-unet"])["format"] == "napari-unet"


def test_a_failed_write_leaves_the_previous_model_intact(trained, tmp_path, monkeypatch):
    path = save_model(trained, tmp_path / "m.safetensors")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("napari_unet.io.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(trained, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_saving_to_a_folder_is_refused(trained, tmp_path):
    with pytest.raises(ModelFileError, match="folder"):
        save_model(trained, tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a napari-unet model"),
        (b"#!/bin/sh\nrm -rf /\n", "not a napari-unet model"),
        (b"\x80\x04\x95 pickle", "not a napari-unet model"),
    ],
)
def test_files_that_are_not_models_are_refused(tmp_path, content, message):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_a_pickled_torch_checkpoint_is_refused_without_unpickling(tmp_path, trained):
    path = tmp_path / "model.pt"
    torch.save(trained.net.state_dict(), path)
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        load_model(path)


def test_truncated_models_are_refused(trained, tmp_path):
    data = save_model(trained, tmp_path / "m.safetensors").read_bytes()
    for cut in (100, len(data) // 2, len(data) - 10):
        (tmp_path / "cut.safetensors").write_bytes(data[:cut])
        with pytest.raises(ModelFileError):
            load_model(tmp_path / "cut.safetensors")


def test_safetensors_without_our_config_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        load_model(path)


def test_newer_format_and_wrong_weights_give_clear_errors(trained, tmp_path):
    path = save_model(trained, tmp_path / "m.safetensors")
    state = safetensors.torch.load_file(path)
    config = read_config(path)
    newer = dict(config, format_version=99, napari_unet_version="9.0")
    safetensors.torch.save_file(
        state, tmp_path / "new.safetensors", {"napari-unet": json.dumps(newer)}
    )
    with pytest.raises(ModelFileError, match="newer file format.*update napari-unet"):
        load_model(tmp_path / "new.safetensors")
    wider = dict(config, architecture=dict(config["architecture"], width=16))
    safetensors.torch.save_file(
        state, tmp_path / "bad.safetensors", {"napari-unet": json.dumps(wider)}
    )
    with pytest.raises(ModelFileError, match="damaged or incompatible"):
        load_model(tmp_path / "bad.safetensors")


def test_missing_paths_and_folders_are_refused(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "nothing.safetensors")
    with pytest.raises(ModelFileError, match="folder"):
        load_model(tmp_path)
