"""Errors meant for the user: their kinds, and operating-system errors in one line."""

import errno
import os

import pytest

from napari_unet.engine.errors import ModelFileError, UNetError, os_error_message


def test_model_file_errors_are_user_errors_and_value_errors():
    assert issubclass(ModelFileError, UNetError) and issubclass(UNetError, ValueError)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("ENOSPC", "the disk is full"),
        ("EDQUOT", "the disk quota is exceeded"),
        ("EACCES", "permission denied"),
        ("EPERM", "permission denied"),
        ("EROFS", "the file system is read-only"),
        ("EISDIR", "it is a folder"),
        ("ENOENT", "no such file or folder"),
    ],
)
def test_known_os_errors_say_what_went_wrong_and_where(name, reason):
    code = getattr(errno, name)
    error = OSError(code, os.strerror(code), "/data/labels.tif")
    assert os_error_message(error) == f"{reason}: /data/labels.tif"
    assert os_error_message(OSError(code, os.strerror(code))) == reason


def test_other_os_errors_keep_their_own_text():
    busy = OSError(errno.EBUSY, "Device or resource busy", "/mnt/disk")
    assert os_error_message(busy) == "Device or resource busy: /mnt/disk"
    assert os_error_message(OSError("the pipe broke")) == "the pipe broke"
    assert os_error_message(ConnectionResetError()) == "ConnectionResetError"
