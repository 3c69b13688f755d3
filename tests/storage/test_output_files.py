"""Outputs are checked before work starts, written as a set, and never replace without consent."""

import errno
import os
import signal
import stat
import time

import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.storage.output_files import (
    STALE_AFTER_S,
    TEMPORARY_SUFFIX,
    reserve,
    sweep_stale,
)


def write(text: bytes):
    return lambda file: file.write(text)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_set_is_written_whole_and_temporaries_exist_only_meanwhile(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    with reserve([a, b]) as outputs:
        hidden = [n for n in names(tmp_path) if n.endswith(TEMPORARY_SUFFIX)]
        assert len(hidden) == 2 and not a.exists()
        outputs.commit([write(b"A"), write(b"B")])
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    assert names(tmp_path) == ["a.bin", "b.bin"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt, OSError(errno.ENOSPC, "No space")])
def test_a_failure_in_the_second_file_leaves_the_old_set(tmp_path, failure):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"old a")
    b.write_bytes(b"old b")

    def broken(file):
        file.write(b"half")
        raise failure

    expected = KeyboardInterrupt if failure is KeyboardInterrupt else UNetError
    with pytest.raises(expected), reserve([a, b], overwrite=True) as outputs:
        outputs.commit([write(b"new a"), broken])
    assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
    assert names(tmp_path) == ["a.bin", "b.bin"]


def test_disk_full_is_one_clear_line(tmp_path):
    def full(file):
        raise OSError(errno.ENOSPC, "No space left on device")

    message = "the disk is full; nothing was written"
    with pytest.raises(UNetError, match=message), reserve([tmp_path / "a.bin"]) as outputs:
        outputs.commit([full])
    assert names(tmp_path) == []


def test_existing_files_need_consent_and_may_be_refused_even_then(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"precious")
    with pytest.raises(UNetError, match="already exists; use --overwrite"):
        reserve([path])
    with pytest.raises(UNetError, match="is not ours; not overwriting it"):
        reserve([path], overwrite=True, replaceable=lambda p: "is not ours")
    assert path.read_bytes() == b"precious" and names(tmp_path) == ["a.bin"]
    with reserve([path], overwrite=True) as outputs:
        outputs.commit([write(b"new")])
    assert path.read_bytes() == b"new"


def test_inputs_duplicates_folders_and_missing_folders_are_refused(tmp_path):
    image = tmp_path / "image.tif"
    image.write_bytes(b"data")
    link = tmp_path / "link.tif"
    link.symlink_to(image)
    for paths, inputs, message in [
        ([image], {image: "the image"}, "is the image of this run"),
        ([link], {image: "the image"}, "is the image of this run"),
        ([tmp_path / "x", tmp_path / "." / "x"], {}, "two outputs"),
        ([tmp_path], {}, "is a folder"),
        ([tmp_path / "no" / "x"], {}, "folder .* does not exist"),
    ]:
        with pytest.raises(UNetError, match=message):
            reserve(paths, overwrite=True, inputs=inputs)
    assert image.read_bytes() == b"data" and names(tmp_path) == ["image.tif", "link.tif"]


def test_unwritable_folders_and_a_full_disk_are_found_up_front(tmp_path, monkeypatch):
    real_open = os.open

    def refuse(path, *args, **kwargs):
        if str(path).endswith(TEMPORARY_SUFFIX):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(UNetError, match="folder .* is read-only"):
        reserve([tmp_path / "a.bin"])
    monkeypatch.undo()
    with pytest.raises(UNetError, match="need about .* MiB but only"):
        reserve([tmp_path / "a.bin", tmp_path / "b.bin"], needed_bytes=2**62)
    assert names(tmp_path) == []


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path):
    previous = os.umask(0o027)
    try:
        with reserve([tmp_path / "new.bin"]) as outputs:
            outputs.commit([write(b"x")])
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o640
    old = tmp_path / "old.bin"
    old.write_bytes(b"old")
    old.chmod(0o604)
    with reserve([old], overwrite=True) as outputs:
        outputs.commit([write(b"x")])
    assert stat.S_IMODE(old.stat().st_mode) == 0o604


def test_stale_temporaries_of_dead_processes_are_swept_and_nothing_else(tmp_path):
    dead = tmp_path / f".model.safetensors.999999999-abcd{TEMPORARY_SUFFIX}"
    young = tmp_path / f".labels.tif.999999999-beef{TEMPORARY_SUFFIX}"
    living = tmp_path / f".other.tif.1-cafe{TEMPORARY_SUFFIX}"
    foreign = tmp_path / ".notes.txt.swp"
    legacy = tmp_path / ".model.safetensors.k3j_x9a2.tmp"
    legacy_other = tmp_path / ".other.tif.k3j_x9a2.tmp"
    for path in (dead, young, living, foreign, legacy, legacy_other):
        path.write_bytes(b"x" * 100)
    old = time.time() - 3600 - 60
    for path in (dead, living, foreign, legacy, legacy_other):
        os.utime(path, (old, old))
    with reserve([tmp_path / "model.safetensors"]) as outputs:
        outputs.commit([write(b"model")])
    assert not dead.exists()
    assert young.exists() and living.exists() and foreign.exists()
    assert legacy.exists() and legacy_other.exists(), "files named like no temporary of ours"
    assert sweep_stale(tmp_path, now=time.time() + 2 * STALE_AFTER_S) == [young]


def test_an_interrupt_while_renaming_comes_after_the_whole_set(tmp_path, monkeypatch):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    real_replace = os.replace

    def interrupted_replace(source, target):
        if target == a:
            signal.raise_signal(signal.SIGINT)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    # a process started in the background may inherit SIGINT ignored: interrupt as Ctrl+C does
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), reserve([a, b]) as outputs:
            outputs.commit([write(b"A"), write(b"B")])
    finally:
        signal.signal(signal.SIGINT, previous)
    assert a.read_bytes() == b"A" and b.read_bytes() == b"B"
    assert names(tmp_path) == ["a.bin", "b.bin"]
