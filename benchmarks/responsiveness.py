"""How long napari's main thread is blocked while the U-Net dock trains or predicts.

A QTimer ticks every 10 ms on the main thread; the longest gap between two ticks is the
longest stall a user could feel (panning, zooming and painting wait for the event loop).
Measured in one napari window, through the dock found by the manifest, with the dock's
default settings: idle as the reference, training on the annotated nuclei sample, predicting a
20-slice stack (the first time adding its result layer, then reusing it); each also while a
simulated user pans, zooms and paints every 100 ms. The click on Start or Predict is made from
the event loop, so its own work (copying the annotations, adding layers) counts. Two
controls: the same training in a separate process (the same CPU load without sharing the GIL
with napari), and training with torch on every core instead of leaving one to napari.

Usage: xvfb-run -a .venv/bin/python benchmarks/responsiveness.py [--seconds 20] [--rows ...]
"""

import argparse
import multiprocessing
import os
import tempfile
import time

import napari
import numpy as np
import torch
from _common import OtherLoad, machine, table
from qtpy.QtCore import QEventLoop, QTimer

from napari_unet import PLUGIN, autosave
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_annotations
from napari_unet.widgets import _jobs

TICK_MS = 10
USER_MS = 100


class Ticks:
    """Gaps between QTimer ticks on the main thread, in milliseconds."""

    def __init__(self):
        self.timer = QTimer(interval=TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append((now - self.last) * 1000)
        self.last = now

    def run(self, until, seconds: float, click=None) -> list[float]:
        """Call ``click()`` from the event loop (so that its own work counts), then run the
        loop until ``until()`` or ``seconds`` pass; return the gaps."""
        self.gaps, self.last = [], time.perf_counter()
        self.timer.start()
        if click is not None:
            QTimer.singleShot(0, click)
            loop = QEventLoop()
            QTimer.singleShot(0, loop.quit)
            loop.exec()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and not until():
            loop = QEventLoop()
            QTimer.singleShot(100, loop.quit)
            loop.exec()
        self.timer.stop()
        return self.gaps


class User:
    """Pans and zooms the camera and paints a dot on the annotations every ``USER_MS``."""

    def __init__(self, viewer, annotations):
        self.viewer, self.annotations, self.count = viewer, annotations, 0
        self.timer = QTimer(interval=USER_MS)
        self.timer.timeout.connect(self._act)
        self.rng = np.random.default_rng(0)

    def _act(self) -> None:
        self.count += 1
        camera = self.viewer.scene.camera
        camera.center = (0, *(256 + 40 * np.sin(self.count / 10) * np.ones(2)))
        camera.zoom *= 1.02 if self.count % 20 < 10 else 1 / 1.02
        y, x = self.rng.integers(140, 500, 2)
        self.annotations.paint((y, x), 2 if self.count % 2 else 1)

    def __enter__(self):
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def train_elsewhere(seconds: float, threads: int, ready) -> None:
    """The dock's training round, in a separate process."""
    torch.set_num_threads(threads)
    trainer = Trainer(
        nuclei(), nuclei_annotations(), settings=TrainSettings(steps=None, time_limit=seconds)
    )
    run = trainer.run()
    next(run)
    ready.set()
    for _ in run:
        pass


def row(name: str, gaps: list[float], work: str, load: OtherLoad) -> list:
    gaps = np.asarray(gaps)
    return [
        name,
        f"{gaps.max():.0f}",
        f"{np.percentile(gaps, 99):.0f}",
        f"{np.mean(gaps > 100) * 100:.1f}%",
        work,
        f"{load.cores:.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each row")
    parser.add_argument(
        "--rows",
        default="training,process,predicting,all-cores",
        help="comma-separated rows besides idle: training, process, predicting, all-cores",
    )
    args = parser.parse_args()
    seconds = args.seconds

    viewer = napari.Viewer(title="responsiveness")
    viewer.window.resize(1400, 1000)
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    threads = torch.get_num_threads()
    about = machine()
    _jobs.warm_up().join()
    annotations = viewer.layers["nuclei annotations"]
    ticks = Ticks()
    ticks.run(lambda: False, 2.0)
    rows = []

    def idle(user: bool) -> None:
        with OtherLoad() as load, User(viewer, annotations) if user else _nothing():
            gaps = ticks.run(lambda: False, seconds)
        rows.append(row("idle" + (" + user" if user else ""), gaps, "", load))

    def train(name: str) -> None:
        widget.train.unit.setCurrentText("minutes")
        widget.train.duration.setValue(seconds / 60)
        widget.train.resume.setChecked(False)
        user = "user" in name
        with OtherLoad() as load, User(viewer, annotations) if user else _nothing():
            gaps = ticks.run(lambda: widget.train.worker is None, seconds + 30, widget.train.start)
        steps = widget.train.last.step if widget.train.last else 0
        rows.append(row(name, gaps, f"{steps} steps", load))

    def train_in_a_process() -> None:
        spawn = multiprocessing.get_context("spawn")
        ready = spawn.Event()
        process = spawn.Process(target=train_elsewhere, args=(seconds, threads, ready))
        process.start()
        ready.wait(120)
        with OtherLoad(process.pid) as load, User(viewer, annotations):
            gaps = ticks.run(lambda: not process.is_alive(), seconds + 30)
        process.join()
        rows.append(row("training in a separate process + user (control)", gaps, "", load))

    def predict(user: bool) -> None:
        with OtherLoad() as load, User(viewer, annotations) if user else _nothing():
            gaps = ticks.run(
                lambda: widget.predict.worker is None, 10 * seconds, widget.predict.predict
            )
        done = widget.predict.last.done if widget.predict.last else 0
        rows.append(row("predicting" + (" + user" if user else ""), gaps, f"{done} slices", load))

    idle(user=False)
    idle(user=True)
    if "training" in args.rows:
        train("training")
        train("training + user")
    if "process" in args.rows:
        train_in_a_process()
    if "predicting" in args.rows:
        if widget.session.model is None:
            train("(a model to predict with)")
            rows.pop()
        image = viewer.layers["nuclei"].data
        stack = np.stack([np.roll(image, 37 * i, axis=i % 2) for i in range(20)])
        viewer.add_image(stack, name="stack", visible=False)
        widget.predict.image_combo.choose(viewer.layers["stack"])
        predict(user=False)
        predict(user=True)
    if "all-cores" in args.rows:
        torch.set_num_threads(threads + 1)
        train("training + user, torch on all cores")
    viewer.close()

    print(about)
    print(
        f"napari {napari.__version__}; the dock runs torch on {threads} thread(s); "
        f"{seconds:.0f} s per row; QTimer every {TICK_MS} ms; user acts every {USER_MS} ms\n"
    )
    headers = [
        "main thread",
        "longest stall (ms)",
        "99th pct gap (ms)",
        "gaps > 100 ms",
        "work done",
        "other load (cores)",
    ]
    print(table(headers, rows))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="napari-unet-benchmark-") as home:
        os.environ[autosave.HOME_VARIABLE] = home
        main()
