"""Every trained model is kept in the per-user folder, newest first; the oldest go when the
copies take more than their budget, never one the user opened or a caller protects."""

import json
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


def keep_rounds(trained, n: int, **options) -> list:
    """``n`` kept copies, one second apart, oldest first."""
    paths = []
    for i in range(n):
        paths.append(autosave.keep(trained, **options))
        os.utime(paths[-1], (1_000_000 + i, 1_000_000 + i))
    return paths


def test_copies_never_replace_each_other_and_the_oldest_go_over_the_budget(trained):
    size = autosave.keep(trained).stat().st_size
    autosave.kept()[0].path.unlink()
    autosave.set_budget(10)
    per_budget = 10 * 2**20 // size
    paths = keep_rounds(trained, per_budget + 2)
    assert len(set(paths)) == per_budget + 2
    assert [kept.path for kept in autosave.kept()] == paths[:1:-1]
    assert not any(path.exists() for path in paths[:2])
    assert sum(kept.size for kept in autosave.kept()) <= autosave.budget()


def test_the_budget_is_stored_checked_and_shown(trained, home):
    assert autosave.budget() == autosave.BUDGET_MB * 2**20
    autosave.set_budget(25)
    assert autosave.budget() == 25 * 2**20
    assert json.loads((home / "models" / autosave.SETTINGS).read_text())["budget_mb"] == 25
    for bad in (0, -1, "lots", 2.5):
        with pytest.raises(UNetError, match="space for kept models"):
            autosave.set_budget(bad)
    assert autosave.budget() == 25 * 2**20
    autosave.keep(trained)
    assert autosave.summary().startswith("1 round, ") and "of 25 MB kept" in autosave.summary()
    (home / "models" / autosave.SETTINGS).write_text("{damaged")
    assert autosave.budget() == autosave.BUDGET_MB * 2**20


def test_opened_and_protected_copies_are_never_pruned(trained, home):
    size = autosave.keep(trained).stat().st_size
    autosave.kept()[0].path.unlink()
    autosave.set_budget(10)
    per_budget = 10 * 2**20 // size
    first, second, *_ = paths = keep_rounds(trained, 3)
    autosave.pin(first)
    assert [k.pinned for k in autosave.kept()] == [False, False, True]
    assert "1 opened (never deleted)" in autosave.summary()
    more = keep_rounds(trained, per_budget + 3, protect=[second])
    assert first.exists() and second.exists()
    assert not paths[2].exists() and more[-1].exists()
    autosave.pin(home / "elsewhere.safetensors")
    assert len(json.loads((home / "models" / autosave.SETTINGS).read_text())["pinned"]) == 1


def test_the_newest_copy_stays_even_alone_over_the_budget(trained, monkeypatch):
    monkeypatch.setattr(autosave, "budget", lambda: 1)
    older, newest = keep_rounds(trained, 2)
    assert newest.exists() and not older.exists()
    assert autosave.prune(protect=[newest]) == []


def test_other_files_in_the_folder_are_left_alone(trained, home):
    folder = home / "models"
    folder.mkdir(parents=True)
    mine = folder / "my model.safetensors"
    mine.write_bytes(b"x")
    autosave.set_budget(10)
    keep_rounds(trained, 10 * 2**20 // autosave.keep(trained).stat().st_size + 2)
    assert mine.exists() and mine.read_bytes() == b"x"


def test_an_unwritable_folder_is_a_clear_error(trained, home):
    home.mkdir()
    (home / "models").write_text("a file where the folder should be")
    with pytest.raises(UNetError, match="cannot keep a copy"):
        autosave.keep(trained)
