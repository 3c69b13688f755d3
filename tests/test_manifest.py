import numpy as np
import pytest

pytest.importorskip("napari")
from npe2 import PluginManager

from napari_unet import PLUGIN, _sample_data
from napari_unet.samples import nuclei_instances


def test_manifest_is_valid_and_registered():
    manager = PluginManager()
    manager.discover()
    manifest = manager.get_manifest(PLUGIN)
    assert manifest.name == "napari-unet-loop"
    assert manifest.display_name == "U-Net loop"
    assert [w.display_name for w in manifest.contributions.widgets] == ["U-Net"]
    assert {s.key for s in manifest.contributions.sample_data} == {"nuclei", "nuclei_annotated"}


def test_sample_data_is_the_real_image_with_annotations():
    [(image, meta, kind)] = _sample_data.nuclei()
    assert kind == "image" and image.shape == (512, 512) and image.dtype == np.uint16
    layers = _sample_data.nuclei_annotated()
    annotations = layers[1][0]
    assert layers[1][2] == "labels"
    assert set(np.unique(annotations[:128])) == {1, 2} and not annotations[128:].any()
    assert len(np.unique(nuclei_instances())) - 1 == 125
