"""napari-unet-loop: annotate, fine-tune a U-Net and predict, in napari or headless."""

__version__ = "0.1.0"
PLUGIN = "napari-unet-loop"
"""The distribution, napari manifest and command name ("napari-unet" on PyPI is another
project); the import package stays ``napari_unet``."""
