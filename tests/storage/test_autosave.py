"""Every trained model is kept in the per-user folder, newest first, the oldest pruned."""

import os

import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.storage import autosave
from napari_unet.storage.loading import load_model


def test_the_folder_follows_the_variable(home, monkeypatch):
    assert autosave.folder() == home / "models"
    pytest.importorskip("platformdirs")
    monkeypatch.delenv(autosave.HOME_VARIABLE)
    assert autosave.folder().name == "models" and "napari-unet-loop" in str(autosave.folder())


def test_a_kept_model_loads_and_is_listed(trained, home):
    path = autosave.keep(trained)
    assert path.parent == home / "models"
    assert load_model(path).class_names == trained.class_names
    (listed,) = autosave.kept()
    assert listed.path == path
    assert "class_2" in listed.label and "1 round" in listed.label


def test_copies_never_replace_each_other_and_the_oldest_go(trained):
    paths = []
    for i in range(5):
        paths.append(autosave.keep(trained, keep_last=3))
        os.utime(paths[-1], (1_000_000 + i, 1_000_000 + i))
    assert len(set(paths)) == 5
    assert [kept.path for kept in autosave.kept()] == paths[:1:-1]
    assert not any(path.exists() for path in paths[:2])


def test_other_files_in_the_folder_are_left_alone(trained, home):
    folder = home / "models"
    folder.mkdir(parents=True)
    mine = folder / "my model.safetensors"
    mine.write_bytes(b"x")
    autosave.keep(trained, keep_last=1)
    autosave.keep(trained, keep_last=1)
    assert mine.exists() and len(autosave.kept()) == 1


def test_an_unwritable_folder_is_a_clear_error(trained, home):
    home.mkdir()
    (home / "models").write_text("a file where the folder should be")
    with pytest.raises(UNetError, match="cannot keep a copy"):
        autosave.keep(trained)
