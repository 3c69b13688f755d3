"""Plain helpers of the tests in every folder (their fixtures are in the conftest.py files):
tiny training settings, running a progress generator, and checks shared by several files."""

import copy
import hashlib

import numpy as np
import torch
from scipy import ndimage

from napari_unet.engine.segmenter import Segmenter
from napari_unet.engine.train import Trainer, TrainSettings

TINY = {"width": 8, "depth": 2, "patch_size": 64, "batch_size": 4, "eval_every": 20}

SETTINGS = TrainSettings(steps=2, **TINY)
"""Two steps of a tiny U-Net: enough to reach every check of training, and to train."""


def run_to_end(generator):
    """Exhaust a progress generator; return (events, returned value)."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as done:
            return events, done.value


def train(image, annotations, settings=SETTINGS, **kwargs):
    """The segmenter that ``Trainer(image, annotations, ...)`` trains."""
    return run_to_end(Trainer(image, annotations, settings=settings, **kwargs).run())[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def with_nan_weight(segmenter: Segmenter) -> Segmenter:
    """A copy of ``segmenter`` whose first weights are NaN."""
    broken = copy.deepcopy(segmenter)
    with torch.no_grad():
        next(broken.net.parameters()).fill_(float("nan"))
    return broken


def fingerprint(path) -> tuple:
    """A file's content, modification time and size: equal only if it was left untouched."""
    info = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), info.st_mtime_ns, info.st_size


def one_error_line(capsys, message: str) -> str:
    """The command line's error output: one line naming the program and holding ``message``."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("napari-unet-loop: error:") and message in err, err
    assert len(err.splitlines()) == 1, err
    return err


def random_balls(shape: tuple[int, int, int], count: int) -> tuple[np.ndarray, np.ndarray]:
    """(probability, mask) of ``count`` balls of radius 9 at random places in a (Z, Y, X)
    volume whose z step is 2 pixels; many of them touch."""
    rng = np.random.default_rng(0)
    centres = np.ones(shape, dtype=bool)
    centres[tuple(rng.integers(0, n, count) for n in shape)] = False
    mask = ndimage.distance_transform_edt(centres, sampling=(2, 1, 1)) < 9
    return ndimage.gaussian_filter(mask.astype(np.float32), 1.0), mask
