"""Fixtures of the dock's tests: napari's notifications, and a viewer with the dock set up in
three ways. napari and Qt are imported only when a fixture is used: tests without napari skip."""

import pytest

from napari_unet import PLUGIN

from .dock_helpers import TINY


@pytest.fixture
def notes(monkeypatch):
    """The napari notifications shown during the test."""
    from napari.utils.notifications import notification_manager

    records = []
    monkeypatch.setattr(notification_manager, "records", records)
    return records


@pytest.fixture
def dock(make_napari_viewer):
    """A viewer with the annotated nuclei sample and the U-Net dock, found by the manifest."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    return viewer, widget


@pytest.fixture
def tiny(monkeypatch):
    """Make the dock train a tiny model for a few steps."""

    def use(widget, settings=TINY) -> None:
        monkeypatch.setattr(widget.train, "settings", lambda resume=False: settings)

    return use


@pytest.fixture
def demo(make_napari_viewer, monkeypatch):
    """What ``napari-unet demo`` does: the annotated sample, then the dock from the manifest;
    the dock trains tiny models. Returns (viewer, dock widget, U-Net widget)."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_annotated")
    monkeypatch.setattr(
        "napari_unet.widgets._train.TrainSection.settings",
        lambda self, resume=False: self._test_settings,
    )
    dock_widget, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    widget.train._test_settings = TINY
    return viewer, dock_widget, widget


@pytest.fixture
def objects_dock(make_napari_viewer, monkeypatch):
    """A viewer with the nuclei image, not annotated, and the dock training tiny models."""
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei")
    monkeypatch.setattr(
        "napari_unet.widgets._train.TrainSection.settings", lambda self, resume=False: TINY
    )
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "U-Net")
    return viewer, widget
