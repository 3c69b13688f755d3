"""napari-unet: annotate, fine-tune a U-Net and predict, in napari or headless."""

__version__ = "0.1.0"
