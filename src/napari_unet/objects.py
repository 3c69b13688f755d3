"""Objects of one class, each with its own id, from the predicted class probability."""

from dataclasses import dataclass

import numpy as np
from skimage.measure import label as connected_components


@dataclass
class ObjectSettings:
    """How objects are cut out of the probability of their class."""

    split: float = 0.5
    min_size: int = 0


def find_objects(
    probability: np.ndarray, mask: np.ndarray, settings: ObjectSettings | None = None
) -> np.ndarray:
    """Object ids (1, 2, ...; 0 elsewhere) of a (Y, X) slice.

    ``probability`` is the class probability, ``mask`` where the class won the argmax.
    """
    return connected_components(mask).astype(np.uint32)
