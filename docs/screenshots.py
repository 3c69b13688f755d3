"""Regenerate the user guide's screenshots: the annotate -> train -> predict -> correct loop.

Usage: xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python docs/screenshots.py [SHOT ...]

SHOT is one of warm, nuclei, objects, stack, volume (default: all). Models trained here are kept
in a temporary folder, not in the user's.

The nuclei sample ships with the plugin; the stack shot uses the Huh7 time-lapse from
../shared/data/ctc-huh7 and is skipped when it is not there.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import napari
import numpy as np
import tifffile
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QScrollArea
from scipy import ndimage

from napari_unet import PLUGIN
from napari_unet.engine.annotations import from_instances
from napari_unet.models import builtin_path
from napari_unet.samples import nuclei_instances
from napari_unet.storage import autosave
from napari_unet.widgets._layers import CLASS_NAMES_KEY, class_colormap

DOCS = Path(__file__).resolve().parent
HUH7 = DOCS.parent.parent / "shared" / "data" / "ctc-huh7"


def wait(seconds: float, until=lambda: False) -> None:
    """Run napari's event loop for ``seconds`` or until ``until()``."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not until():
        loop = QEventLoop()
        QTimer.singleShot(50, loop.quit)
        loop.exec()


def shot(viewer, name: str) -> None:
    viewer.reset_view()
    wait(1.0)
    viewer.screenshot(DOCS / name, canvas_only=False)
    print(f"wrote docs/{name}")


def open_viewer():
    viewer = napari.Viewer(title=PLUGIN)
    viewer.window.resize(1500, 1000)
    return viewer


def start_warm() -> None:
    """The built-in nuclei model opened and its objects predicted, before any annotation."""
    viewer = open_viewer()
    viewer.open_sample(PLUGIN, "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    widget.model.load(builtin_path("nuclei"))
    widget.predict.classes.setChecked(False)
    widget.predict.instances.setChecked(True)
    widget.predict.predict()
    wait(60, lambda: widget.predict.worker is None)
    widget.findChild(QScrollArea).ensureWidgetVisible(widget.predict.split)
    shot(viewer, "0-start-warm.png")
    viewer.close()


def nuclei_loop() -> None:
    viewer = open_viewer()
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    annotations = viewer.layers["nuclei annotations"]
    annotations.mode = "paint"
    annotations.selected_label = 2
    shot(viewer, "1-annotate.png")

    widget.train.duration.setValue(1.0)
    widget.train.start()
    wait(30)
    shot(viewer, "2-train.png")
    wait(120, lambda: widget.train.worker is None)

    annotations.visible = False
    widget.predict.predict()
    wait(60, lambda: widget.predict.worker is None)
    viewer.layers.selection.active = viewer.layers["nuclei: U-Net classes"]
    shot(viewer, "3-predict.png")

    widget.predict.copy_to_annotations()
    annotations.visible = True
    viewer.layers["nuclei: U-Net classes"].visible = False
    viewer.layers.selection.active = annotations
    annotations.mode = "paint"
    annotations.selected_label = 1
    widget.train.duration.setValue(0.5)
    widget.train.start()
    wait(20)
    shot(viewer, "4-correct-and-train-again.png")
    wait(120, lambda: widget.train.worker is None)
    viewer.close()


def stack_prediction() -> None:
    if not HUH7.exists():
        print("skipped the stack shot: ../shared/data/ctc-huh7 is missing")
        return
    image = tifffile.imread(HUH7 / "image.tif")
    instances = tifffile.imread(HUH7 / "instances_slice20.tif")
    frame = np.zeros(image.shape, np.uint8)
    cells = from_instances(instances)
    frame[20][instances > 0] = cells[instances > 0]
    smooth = ndimage.gaussian_filter(image[20].astype(np.float32), 2)
    dark = ndimage.distance_transform_edt(smooth < 8) > 6
    stripes = (np.arange(image.shape[1]) % 48 < 6)[:, None]
    frame[20][dark & stripes & (instances == 0)] = 1
    viewer = open_viewer()
    viewer.add_image(image, name="huh7", colormap="gray")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    viewer.add_labels(
        frame,
        name="huh7 annotations",
        colormap=class_colormap(),
        metadata={CLASS_NAMES_KEY: ["background", "cell"]},
    )
    widget.annotate.annotations_combo.choose(viewer.layers["huh7 annotations"])
    widget.train.duration.setValue(1.0)
    widget.train.start()
    wait(180, lambda: widget.train.worker is None)
    viewer.layers["huh7 annotations"].visible = False
    viewer.dims.set_current_step(0, 12)
    widget.predict.predict()
    wait(120, lambda: widget.predict.last is not None and widget.predict.last.done >= 14)
    shot(viewer, "5-predict-a-stack.png")
    wait(300, lambda: widget.predict.worker is None)
    viewer.close()


def train_and_predict_objects(widget) -> None:
    """One minute of training, then the objects of the class predicted."""
    widget.train.duration.setValue(1.0)
    widget.train.start()
    wait(200, lambda: widget.train.worker is None)
    widget.predict.classes.setChecked(False)
    widget.predict.instances.setChecked(True)
    widget.predict.predict()
    wait(200, lambda: widget.predict.worker is None)


def objects() -> None:
    """Each nucleus of the top rows painted with its own id, and the objects predicted."""
    viewer = open_viewer()
    viewer.window.resize(1500, 1180)
    viewer.open_sample(PLUGIN, "nuclei")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    widget.annotate.paint_mode.setCurrentIndex(widget.annotate.paint_mode.findData("objects"))
    annotations = widget.annotate.new_annotations()
    instances = nuclei_instances()[:128]
    painted = np.where(instances > 0, instances + 1, 1).astype(np.uint16)
    annotations.data[:128] = painted
    annotations.refresh()
    widget.annotate.table.item(1, 2).setText("nucleus")
    train_and_predict_objects(widget)
    viewer.layers.move(viewer.layers.index(annotations), len(viewer.layers) - 1)
    viewer.layers.selection.active = annotations
    annotations.mode = "paint"
    widget.annotate.new_object()
    widget.findChild(QScrollArea).ensureWidgetVisible(widget.predict.split)
    shot(viewer, "6-objects.png")
    viewer.close()


def volume() -> None:
    """A synthetic nuclei volume (z step twice the pixel size), 3 slices annotated, its
    objects cut in 3D and shown in napari's 3D view: one nucleus, one id through z."""
    sys.path.insert(0, str(DOCS.parent / "benchmarks"))
    from volumes3d import annotate, nuclei_volume

    image, truth = nuclei_volume(0, 2.0)
    viewer = open_viewer()
    layer = viewer.add_image(image, name="nuclei volume", scale=(2, 1, 1), axis_labels="zyx")
    annotations = viewer.add_labels(
        annotate(truth, [8, 20, 32]), name="annotations", scale=(2, 1, 1)
    )
    annotations.metadata[CLASS_NAMES_KEY] = ["background", "nucleus"]
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    widget.annotate.image_combo.choose(layer)
    widget.train.resume.setChecked(False)
    train_and_predict_objects(widget)
    annotations.visible = False
    layer.visible = False
    viewer.dims.ndisplay = 3
    widget.findChild(QScrollArea).ensureWidgetVisible(widget.predict.stack)
    viewer.reset_view()
    wait(1.0)
    viewer.scene.camera.angles = (-20, 35, 75)
    viewer.scene.camera.zoom *= 1.2
    wait(1.0)
    viewer.screenshot(DOCS / "7-volume-objects.png", canvas_only=False)
    print("wrote docs/7-volume-objects.png")
    viewer.close()


SHOTS = {
    "warm": start_warm,
    "nuclei": nuclei_loop,
    "objects": objects,
    "stack": stack_prediction,
    "volume": volume,
}

if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="napari-unet-screenshots-") as home:
        os.environ[autosave.HOME_VARIABLE] = home
        for name in sys.argv[1:] or list(SHOTS):
            SHOTS[name]()
