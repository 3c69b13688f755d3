"""How unsure the model is: 0 where one class wins clearly, 1 at a tie, from any number of
classes; the predictor gives it for images and stacks, tiled or whole."""

import numpy as np
import pytest
import torch

from napari_unet.engine.errors import UNetError
from napari_unet.engine.predict import Predictor, predict
from napari_unet.engine.progress import drain
from napari_unet.engine.uncertainty import margin_uncertainty, uncertainty


def test_sure_pixels_are_0_and_ties_are_1_for_any_number_of_classes():
    p = np.array([[1.0, 0.5, 0.7, 0.4], [0.0, 0.5, 0.3, 0.4], [0.0, 0.0, 0.0, 0.2]], np.float32)
    np.testing.assert_allclose(uncertainty(p), [0.0, 1.0, 0.6, 1.0], atol=1e-6)
    assert uncertainty(p).dtype == np.float32
    tensor = torch.from_numpy(p.T.copy())
    np.testing.assert_allclose(margin_uncertainty(tensor, axis=1), uncertainty(p), atol=1e-6)


def test_the_prediction_carries_the_uncertainty_of_its_probabilities(trained, image):
    crop = image[:200, :260]
    result = predict(trained, crop, probabilities=True, uncertainty=True, device="cpu")
    assert result.uncertainty.shape == crop.shape and result.uncertainty.dtype == np.float32
    np.testing.assert_allclose(result.uncertainty, uncertainty(result.probabilities), atol=1e-5)
    tiled = predict(trained, crop, uncertainty=True, labels=False, tile_size=96, device="cpu")
    np.testing.assert_allclose(tiled.uncertainty, result.uncertainty, atol=1e-4)
    assert tiled.labels is None and tiled.probabilities is None


def test_a_stack_gets_the_uncertainty_of_every_slice(trained, image):
    stack = np.stack([image[:128, :128], image[128:256, :128]])
    run = Predictor(trained, stack, probabilities=True, uncertainty=True, device="cpu")
    result = drain(run.run())
    assert result.uncertainty.shape == stack.shape
    np.testing.assert_allclose(result.uncertainty, uncertainty(result.probabilities), atol=1e-5)
    assert result.uncertainty[0].std() > 0 and result.uncertainty[1].std() > 0
    with pytest.raises(UNetError, match="labels, probabilities, uncertainty or instances"):
        Predictor(trained, stack, labels=False, device="cpu")
