"""A real image shipped with the package: DSB2018 nuclei (see README.md here)."""

from importlib.resources import files

import numpy as np
import tifffile

from ..engine.annotations import from_instances


def nuclei() -> np.ndarray:
    """512x512 uint16 fluorescence image of nuclei."""
    return tifffile.imread(files(__package__) / "nuclei.tif")


def nuclei_instances() -> np.ndarray:
    """The image's complete instance labels (0 = background)."""
    return tifffile.imread(files(__package__) / "nuclei_instances.tif")


def nuclei_annotations(rows: int = 128) -> np.ndarray:
    """Annotations of the top ``rows`` rows (1 = background, 2 = nucleus), 0 below."""
    annotations = from_instances(nuclei_instances())
    annotations[rows:] = 0
    return annotations
