"""How unsure the model is, per pixel: 0 where one class clearly wins, 1 where the two most
probable classes tie. Mistakes of the class map gather where this is high (mostly at object
borders), so it tells the user where a correction teaches the network most."""

import numpy as np
import torch


def margin_uncertainty(probabilities: torch.Tensor, axis: int = 0) -> torch.Tensor:
    """1 - (p_best - p_second) along the class ``axis`` of softmax probabilities."""
    top = torch.topk(probabilities.float(), 2, dim=axis).values
    best, second = top.unbind(axis)
    return (1 - (best - second)).clamp_(0, 1)


def uncertainty(probabilities: np.ndarray, axis: int = 0) -> np.ndarray:
    """:func:`margin_uncertainty` of a numpy array of probabilities, as float32."""
    return margin_uncertainty(torch.from_numpy(np.asarray(probabilities)), axis).numpy()
