"""``napari-unet-loop demo``: napari with the annotated nuclei sample and the U-Net dock."""

import napari

from .. import PLUGIN
from ..models import builtin_path


def open_demo() -> None:
    """Open the viewer and run napari's event loop until the window is closed."""
    viewer = napari.Viewer(title=f"{PLUGIN} demo")
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    _, dock = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    dock.model.load(builtin_path("nuclei"))  # predict first, then correct and fine-tune
    napari.run()
