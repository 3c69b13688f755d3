"""Shared fixtures: the shipped nuclei image, its annotations, and a tiny trained model."""

import numpy as np
import pytest

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_annotations, nuclei_instances
from napari_unet.storage import autosave

TINY = {"width": 8, "depth": 2, "patch_size": 64, "batch_size": 4, "eval_every": 20}


def run_to_end(generator):
    """Exhaust a progress generator; return (events, returned value)."""
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as done:
            return events, done.value


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="session")
def image() -> np.ndarray:
    return nuclei()


@pytest.fixture(scope="session")
def truth() -> np.ndarray:
    """Complete annotations of the nuclei image (1 = background, 2 = nucleus)."""
    return from_instances(nuclei_instances())


@pytest.fixture
def annotations() -> np.ndarray:
    """The top 128 rows annotated, the rest 0 (a fresh copy per test)."""
    return nuclei_annotations(rows=128)


@pytest.fixture(scope="session")
def trained(image):
    """A tiny U-Net trained for 80 steps on the top rows (shared: do not modify); on the CPU,
    so that it is the same model, and the tests' expectations of it hold, on any machine."""
    settings = TrainSettings(steps=80, device="cpu", **TINY)
    _, segmenter = run_to_end(Trainer(image, nuclei_annotations(128), settings=settings).run())
    return segmenter


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """Kept models go to a folder of the test's own, never to the user's."""
    monkeypatch.setenv(autosave.HOME_VARIABLE, str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def notes(monkeypatch):
    """The napari notifications shown during the test."""
    from napari.utils.notifications import notification_manager

    records = []
    monkeypatch.setattr(notification_manager, "records", records)
    return records


def messages(notes) -> str:
    return "\n".join(str(n.message) for n in notes)
