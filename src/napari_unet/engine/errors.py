"""Errors whose message is meant for the user, not a traceback."""

import errno


class UNetError(ValueError):
    """Bad input or a failed step, with a message a user can act on."""


class ModelFileError(UNetError):
    """A file that is not a (compatible) napari-unet-loop model."""


def os_error_message(error: OSError) -> str:
    """One line for an operating-system error: what went wrong, and where."""
    reasons = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.EISDIR: "it is a folder",
        errno.ENOENT: "no such file or folder",
    }
    reason = reasons.get(error.errno) or error.strerror or str(error) or type(error).__name__
    where = error.filename
    return f"{reason}: {where}" if where else reason
