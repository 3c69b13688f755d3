"""Model files: saved whole or not at all, loaded back as they were, and every file that is not
a (compatible) model refused with a clear error before anything is allocated."""

import builtins
import dataclasses
import errno
import json
import math
import os
import stat
import tracemalloc

import numpy as np
import pytest
import safetensors.torch
import torch

from napari_unet.engine.errors import ModelFileError, UNetError
from napari_unet.engine.predict import predict
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.storage.loading import load_model
from napari_unet.storage.model_files import model_bytes, read_config, save_model

from helpers import TINY, run_to_end, with_nan_weight


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

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("napari_unet.storage.output_files.os.fsync", full)
    with pytest.raises(UNetError, match="the disk is full; nothing was written"):
        save_model(trained, path, overwrite=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_an_existing_file_is_replaced_only_with_consent(trained, tmp_path):
    path = save_model(trained, tmp_path / "m.safetensors")
    with pytest.raises(UNetError, match="already exists; pass overwrite=True"):
        save_model(trained, path)
    notes = tmp_path / "notes.safetensors"
    notes.write_text("not a model")
    with pytest.raises(UNetError, match="is not a napari-unet-loop model; not overwriting it"):
        save_model(trained, notes, overwrite=True)
    assert notes.read_text() == "not a model"
    path.chmod(0o640)
    save_model(trained, path, overwrite=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(
        save_model(trained, tmp_path / "new" / "m.safetensors").stat().st_mode
    ) == (0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_saving_to_a_folder_is_refused(trained, tmp_path):
    with pytest.raises(ModelFileError, match="folder"):
        save_model(trained, tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a napari-unet-loop model"),
        (b"#!/bin/sh\nrm -rf /\n", "not a napari-unet-loop model"),
        (b"\x80\x04\x95 pickle", "not a napari-unet-loop model"),
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
    with pytest.raises(ModelFileError, match="not a napari-unet-loop model"):
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
    with pytest.raises(ModelFileError, match="not a napari-unet-loop model"):
        load_model(path)


def test_newer_format_and_wrong_weights_give_clear_errors(trained, tmp_path):
    path = save_model(trained, tmp_path / "m.safetensors")
    state = safetensors.torch.load_file(path)
    config = read_config(path)
    newer = dict(config, format_version=99, napari_unet_version="9.0")
    safetensors.torch.save_file(
        state, tmp_path / "new.safetensors", {"napari-unet": json.dumps(newer)}
    )
    with pytest.raises(ModelFileError, match="newer file format.*update napari-unet-loop"):
        load_model(tmp_path / "new.safetensors")
    for odd in ("1", True, -5, 0, None, 1.0):
        damaged = dict(config, format_version=odd)
        safetensors.torch.save_file(
            state, tmp_path / "odd.safetensors", {"napari-unet": json.dumps(damaged)}
        )
        with pytest.raises(ModelFileError, match=r"damaged model config: its format_version"):
            load_model(tmp_path / "odd.safetensors")
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
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ModelFileError, match="not a regular file"):
        load_model(tmp_path / "pipe")


def _rewrite(tmp_path, trained, name="edited.safetensors", state=None, **changes):
    """A copy of the trained model with config fields replaced (None removes a field)."""
    source = save_model(trained, tmp_path / f"source-{name}", overwrite=True)
    config = read_config(source)
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    path = tmp_path / name
    state = safetensors.torch.load_file(source) if state is None else state
    safetensors.torch.save_file(state, path, {"napari-unet": json.dumps(config)})
    return path


def test_a_tiny_file_asking_for_a_huge_network_fails_without_allocating(trained, tmp_path):
    for width, depth in [(512, 6), (10**9, 6), (8, 5)]:
        arch = dict(trained.config.to_dict(), width=width, depth=depth)
        path = _rewrite(tmp_path, trained, state={"w": torch.zeros(1)}, architecture=arch)
        assert path.stat().st_size < 2000
        tracemalloc.start()
        try:
            with pytest.raises(ModelFileError, match="damaged"):
                load_model(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 50 * 2**20


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"architecture": None}, "'architecture' is missing"),
        ({"architecture": [1, 2]}, "architecture must give"),
        ({"architecture": {"depth": "3"}}, "architecture must give"),
        ({"class_names": "background"}, "list of texts"),
        ({"class_names": [1, 2]}, "list of texts"),
        ({"class_names": ["a", "b", "c"]}, "names 3 classes but has 2 outputs"),
        ({"normalization": {"low_percentile": math.nan}}, "normalisation"),
        ({"normalization": {"mode": "magic"}}, "normalisation"),
        ({"normalization": {"low": [0.0], "high": [math.inf]}}, "normalisation"),
        ({"normalization": {"low": [0, 0], "high": [1, 1]}}, "input channels"),
        ({"normalization": {"colour": 1}}, "normalisation"),
        ({"normalization": 3}, "normalisation"),
        ({"history": {"steps": 3}}, "history must be a list"),
        ({"history": [1]}, "history must be a list"),
    ],
)
def test_malformed_configs_give_a_clear_error(trained, tmp_path, changes, message):
    path = _rewrite(tmp_path, trained, **changes)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)
    with pytest.raises(ModelFileError, match=message):
        read_config(path)


def test_architecture_sizes_must_be_integers(trained, tmp_path):
    arch = dict(trained.config.to_dict(), depth=True)
    with pytest.raises(ModelFileError, match="integers"):
        load_model(_rewrite(tmp_path, trained, architecture=arch))


def test_a_model_file_is_opened_once(trained, tmp_path, monkeypatch):
    path = save_model(trained, tmp_path / "m.safetensors")
    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    loaded = load_model(path)
    assert len(opened) == 1 and loaded.class_names == trained.class_names


def test_a_file_longer_or_shorter_than_its_header_is_refused(trained, tmp_path):
    data = save_model(trained, tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "long.safetensors").write_bytes(data + b"\0" * 10)
    with pytest.raises(ModelFileError, match="size does not match"):
        load_model(tmp_path / "long.safetensors")


def test_the_python_api_refuses_what_is_not_a_model_or_a_path(trained, tmp_path):
    with pytest.raises(UNetError, match="Segmenter is needed"):
        save_model(trained.net, tmp_path / "m.safetensors")
    with pytest.raises(UNetError, match="file name is needed"):
        save_model(trained, None)
    with pytest.raises(UNetError, match="file name is needed"):
        load_model(3)
    assert list(tmp_path.iterdir()) == []


def test_a_trained_model_with_given_class_names_loads_back(image, annotations, tmp_path):
    settings = TrainSettings(steps=2, device="cpu", **TINY)
    names = ("background", "nucleus")
    trainer = Trainer(image, annotations, settings=settings, class_names=names)
    _, segmenter = run_to_end(trainer.run())
    path = save_model(segmenter, tmp_path / "named.safetensors")
    assert load_model(path).class_names == ["background", "nucleus"]


def test_a_model_file_with_weights_that_are_not_numbers_is_refused(trained, tmp_path):
    path = tmp_path / "nan.safetensors"
    path.write_bytes(model_bytes(with_nan_weight(trained)))
    with pytest.raises(ModelFileError, match="weights are not numbers"):
        load_model(path)


def test_a_long_output_name_is_written(trained, tmp_path):
    name = "é" * 60 + "a" * (255 - 120 - len(".safetensors")) + ".safetensors"
    assert len(name.encode()) == 255
    path = save_model(trained, tmp_path / name)
    assert load_model(path).class_names == trained.class_names
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_names_undecodable_as_utf8_are_written(trained, tmp_path):
    import os

    name = os.fsdecode(b"caf\xe9-" + b"a" * 230 + b".safetensors")
    path = save_model(trained, tmp_path / name)
    assert load_model(path).class_names == trained.class_names


def test_the_object_size_round_trips_and_is_absent_when_unset(trained, tmp_path):
    sized = dataclasses.replace(trained, object_diameter=24.5)
    path = save_model(sized, tmp_path / "sized.safetensors")
    assert read_config(path)["object_diameter"] == 24.5
    assert load_model(path).object_diameter == 24.5
    plain = save_model(trained, tmp_path / "plain.safetensors")
    assert "object_diameter" not in read_config(plain)
    assert load_model(plain).object_diameter is None


def test_an_explicit_null_object_size_is_none(trained, tmp_path):
    path = _rewrite(tmp_path, trained)
    config = read_config(path)
    config["object_diameter"] = None
    state = safetensors.torch.load_file(path)
    safetensors.torch.save_file(state, path, {"napari-unet": json.dumps(config)})
    assert load_model(path).object_diameter is None


@pytest.mark.parametrize("value", [-3, 0, 0.5, 1e6, "big", "24.5", True, [24.5], math.inf])
def test_a_damaged_object_size_is_refused_naming_the_file(trained, tmp_path, value):
    path = _rewrite(tmp_path, trained, name="sized.safetensors", object_diameter=value)
    with pytest.raises(ModelFileError, match=r"sized\.safetensors.*object diameter"):
        load_model(path)
    with pytest.raises(ModelFileError, match="damaged model config"):
        read_config(path)
