"""Errors whose message is meant for the user, not a traceback."""


class UNetError(ValueError):
    """Bad input or a failed step, with a message a user can act on."""


class ModelFileError(UNetError):
    """A file that is not a (compatible) napari-unet model."""
