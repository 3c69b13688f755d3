"""Helpers of the dock's tests: tiny training settings, tiny models, and starting the dock's
jobs and waiting for them (napari is imported only by the tests that use them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei

if TYPE_CHECKING:
    from napari_unet.widgets import UNetWidget

# report_every=0: a point on the plot per step on any device (a GPU reports every 0.1 s)
TINY = TrainSettings(
    steps=5, width=4, depth=2, patch_size=32, batch_size=2, eval_every=5, report_every=0
)
ENDLESS = TrainSettings(**{**vars(TINY), "steps": 100_000})
WAIT_MS = 60_000


def messages(notes) -> str:
    return "\n".join(str(n.message) for n in notes)


def tiny_model(image, annotations, channel_axis=None):
    trainer = Trainer(image, annotations, channel_axis=channel_axis, settings=TINY)
    run = trainer.run()
    while True:
        try:
            next(run)
        except StopIteration as done:
            return done.value


def train(qtbot, widget: UNetWidget) -> None:
    widget.train.start()
    qtbot.waitUntil(lambda: widget.train.worker is None, timeout=WAIT_MS)


def copy_slice(qtbot, widget: UNetWidget) -> int:
    """Copy slice to annotations, waiting for the copy; the annotation pixels it changed."""
    target = widget.annotate.annotations()
    before = None if target is None else np.array(target.data)
    widget.predict.copy_to_annotations()
    qtbot.waitUntil(lambda: widget.predict.copying is None, timeout=WAIT_MS)
    return 0 if target is None else int((np.asarray(target.data) != before).sum())


def predict(qtbot, widget: UNetWidget, current_slice: bool = False) -> None:
    if current_slice:
        widget.predict.predict_slice()
    else:
        widget.predict.predict()
    qtbot.waitUntil(lambda: widget.predict.worker is None, timeout=WAIT_MS)


def stack_image():
    """Three 96x96 crops of the nuclei sample as a (Z, Y, X) stack."""
    image = nuclei()
    return np.stack([image[:96, :96], image[100:196, 100:196], image[300:396, 200:296]])


def long_stack(viewer, widget: UNetWidget, slices: int = 200):
    """A stack long enough to cancel, with a tiny model for it; returns the image layer."""
    stack = np.stack([nuclei()[:96, :96]] * slices)
    annotations = np.zeros(stack.shape, np.uint8)
    annotations[0, :40], annotations[0, 40:50] = 1, 2
    widget.session.set_model(tiny_model(stack[:1], annotations[:1]))
    widget.session.device = "cpu"  # slice by slice: a GPU predicts all 200 in one batch
    layer = viewer.add_image(stack, name="stack")
    widget.predict.image_combo.choose(layer)
    return layer


def objects_layer(widget: UNetWidget):
    widget.annotate.paint_mode.setCurrentIndex(widget.annotate.paint_mode.findData("objects"))
    return widget.annotate.new_annotations()
