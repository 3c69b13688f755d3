"""Inputs found by probing: class names that are not texts, weights that are not numbers."""

import copy

import numpy as np
import pytest
import torch

from napari_unet.engine.errors import ModelFileError, UNetError
from napari_unet.engine.model import UNetConfig
from napari_unet.engine.segmenter import Segmenter
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.storage.model_files import load_model, model_bytes, save_model

from conftest import TINY, run_to_end


@pytest.mark.parametrize("names", [[1, 2], "xyz", 7, ["background", None]])
def test_class_names_that_are_not_texts_are_refused_before_training(image, annotations, names):
    with pytest.raises(UNetError, match="class names must be a list of texts"):
        Trainer(image, annotations, settings=TrainSettings(steps=1), class_names=names)
    with pytest.raises(UNetError, match="class names must be a list of texts"):
        Segmenter.new(UNetConfig(depth=1, width=2), names)


def test_a_trained_model_with_given_class_names_loads_back(image, annotations, tmp_path):
    settings = TrainSettings(steps=2, device="cpu", **TINY)
    names = ("background", "nucleus")
    trainer = Trainer(image, annotations, settings=settings, class_names=names)
    _, segmenter = run_to_end(trainer.run())
    path = save_model(segmenter, tmp_path / "named.safetensors")
    assert load_model(path).class_names == ["background", "nucleus"]


def _with_nan_weight(segmenter: Segmenter) -> Segmenter:
    broken = copy.deepcopy(segmenter)
    with torch.no_grad():
        next(broken.net.parameters()).fill_(float("nan"))
    return broken


def test_a_model_file_with_weights_that_are_not_numbers_is_refused(trained, tmp_path):
    path = tmp_path / "nan.safetensors"
    path.write_bytes(model_bytes(_with_nan_weight(trained)))
    with pytest.raises(ModelFileError, match="weights are not numbers"):
        load_model(path)


def test_training_that_diverges_stops_with_a_clear_message(image, annotations, trained):
    start = _with_nan_weight(trained)
    kept = {k: v.clone() for k, v in start.net.state_dict().items()}
    settings = TrainSettings(steps=3, device="cpu", batch_size=2, patch_size=64)
    trainer = Trainer(image, annotations, settings=settings, segmenter=start)
    with pytest.raises(UNetError, match="training diverged"):
        run_to_end(trainer.run())
    for key, value in start.net.state_dict().items():
        assert torch.equal(value.isnan(), kept[key].isnan())
        assert torch.equal(value.nan_to_num(), kept[key].nan_to_num())
    assert np.isfinite(next(trained.net.parameters()).detach().numpy()).all()


def test_a_long_output_name_is_written(trained, tmp_path):
    name = "é" * 60 + "a" * (255 - 120 - len(".safetensors")) + ".safetensors"
    assert len(name.encode()) == 255
    path = save_model(trained, tmp_path / name)
    assert load_model(path).class_names == trained.class_names
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize(
    "convert",
    [
        lambda x: x.astype(np.float64) * 1e300,
        lambda x: x.astype(np.float64) * 1e-300,
        lambda x: x.astype(np.int64) + 10**15,
        lambda x: x.astype(np.int32) + 10**9,
        lambda x: x.astype(np.uint64) * 2**40,
    ],
    ids=["float64 huge", "float64 tiny", "int64 offset", "int32 offset", "uint64 scaled"],
)
def test_wide_types_predict_and_train_like_their_values(trained, image, annotations, convert):
    from napari_unet.engine.predict import predict

    expected = predict(trained, image, device="cpu").labels
    wide = convert(image)
    assert (predict(trained, wide, device="cpu").labels == expected).mean() > 0.999
    settings = TrainSettings(steps=2, device="cpu", **TINY)
    _, segmenter = run_to_end(Trainer(wide, annotations, settings=settings).run())
    assert np.isfinite(segmenter.normalization.low + segmenter.normalization.high).all()


def test_fine_tuning_keeps_the_architecture_and_says_so(trained, image, annotations):
    same = TrainSettings(steps=1, device="cpu", depth=trained.config.depth)
    assert Trainer(image, annotations, settings=same, segmenter=trained).architecture == {
        "depth": trained.config.depth,
        "width": trained.config.width,
    }
    deeper = TrainSettings(steps=1, device="cpu", depth=trained.config.depth + 1)
    with pytest.raises(UNetError, match="fine-tuning keeps a model's depth"):
        Trainer(image, annotations, settings=deeper, segmenter=trained)


def test_names_undecodable_as_utf8_are_written(trained, tmp_path):
    import os

    name = os.fsdecode(b"caf\xe9-" + b"a" * 230 + b".safetensors")
    path = save_model(trained, tmp_path / name)
    assert load_model(path).class_names == trained.class_names


def test_a_huge_integer_setting_is_refused_not_crashed():
    from napari_unet.engine.objects import ObjectSettings

    with pytest.raises(UNetError, match="split"):
        ObjectSettings(split=10**400)


def test_an_encrypted_package_is_refused_in_one_line(tmp_path):
    import zipfile

    pytest.importorskip("yaml")
    path = tmp_path / "encrypted.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("rdf.yaml", "type: model\n")
    data = bytearray(path.read_bytes())
    for header, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        data[data.find(header) + flags] |= 1  # the "encrypted" bit
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="not a readable bioimage.io package"):
        load_model(path)
