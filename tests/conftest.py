"""Shared fixtures: the shipped nuclei image, its annotations, a tiny trained model, a folder
of the test's own for kept models, and no volume model cached from one test to the next (the
dock's fixtures are in widgets/conftest.py)."""

import numpy as np
import pytest

from napari_unet.engine.annotations import from_instances
from napari_unet.engine.train import Trainer, TrainSettings
from napari_unet.samples import nuclei, nuclei_annotations, nuclei_instances
from napari_unet.storage import autosave

from helpers import TINY, run_to_end


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
