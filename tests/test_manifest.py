"""napari's manifest (napari.yaml): valid, registered, and naming the dock and the samples."""

import pytest

pytest.importorskip("napari")
from npe2 import PluginManager

from napari_unet import PLUGIN


def test_manifest_is_valid_and_registered():
    manager = PluginManager()
    manager.discover()
    manifest = manager.get_manifest(PLUGIN)
    assert manifest.name == "napari-unet-loop"
    assert manifest.display_name == "U-Net loop"
    assert [w.display_name for w in manifest.contributions.widgets] == ["U-Net"]
    assert {s.key for s in manifest.contributions.sample_data} == {"nuclei", "nuclei_annotated"}
