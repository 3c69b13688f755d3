"""napari sample data: the nuclei image, alone or with annotations of its top rows."""

import numpy as np
import pytest

pytest.importorskip("napari")

from napari_unet import _sample_data
from napari_unet.samples import nuclei_instances


def test_sample_data_is_the_real_image_with_annotations():
    [(image, meta, kind)] = _sample_data.nuclei()
    assert kind == "image" and image.shape == (512, 512) and image.dtype == np.uint16
    layers = _sample_data.nuclei_annotated()
    annotations = layers[1][0]
    assert layers[1][2] == "labels"
    assert set(np.unique(annotations[:128])) == {1, 2} and not annotations[128:].any()
    assert len(np.unique(nuclei_instances())) - 1 == 125
