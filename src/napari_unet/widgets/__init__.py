"""napari widgets of napari-unet: the "U-Net" dock."""

from ._main import UNetWidget

__all__ = ["UNetWidget"]
