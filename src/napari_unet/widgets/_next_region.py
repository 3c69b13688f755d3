"""Next region: after a prediction, take the user to where annotating helps most.

The regions of the predicted image are ranked by doubtful, unannotated area (engine.regions:
the doubt of the objects found when objects are predicted, else the pixel uncertainty) in a
worker; each click shows the best region not shown since that prediction: the view moves
to its slice and zooms on it, an outline marks it, and the annotations layer is selected with
the brush, so the next stroke lands there. A new prediction starts a new ranking.
"""

import numpy as np
from napari.layers import Image, Labels, Shapes

from ..engine.regions import Region, rank_regions
from ._layers import image_data, placement, spatial_shape

OUTLINE = "next region"
CANDIDATES = 50


def annotated_mask(annotations: Labels | None, shape: tuple[int, ...]) -> np.ndarray:
    """Where ``annotations`` mark something, as a (Z, Y, X) mask of ``shape`` (nothing when
    the layer is missing or of another shape)."""
    if annotations is None or tuple(image_data(annotations).shape) not in (shape, shape[1:]):
        return np.zeros(shape, bool)
    return (np.asarray(image_data(annotations)) > 0).reshape(shape)


def stack_shape(image: Image) -> tuple[int, ...]:
    """The (Z, Y, X) shape of an image layer, Z = 1 for a 2D image."""
    shape = spatial_shape(image)
    return shape if len(shape) == 3 else (1, *shape)


def ranking(
    uncertainty: np.ndarray, annotated: np.ndarray, size: int, instances: np.ndarray | None
) -> list[Region]:
    """The best regions of a (Z, Y, X) uncertainty and its objects (run in a worker)."""
    return rank_regions(uncertainty, annotated, size=size, count=CANDIDATES, instances=instances)


class NextRegion:
    """The ranking of one prediction and the regions shown from it."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.regions: list[Region] = []
        self.shown: list[Region] = []
        self.image: Image | None = None

    def reset(self, image: Image, regions: list[Region]) -> None:
        """A new ranking, for a new prediction of ``image``."""
        self.image, self.regions, self.shown = image, regions, []

    def next(self, annotated: np.ndarray) -> Region | None:
        """The best region not shown yet and not annotated since the ranking, or None."""
        for region in self.regions:
            box = annotated[
                region.z, region.y : region.y + region.size, region.x : region.x + region.size
            ]
            if any(region.overlaps(other) for other in self.shown) or box.mean() > 0.5:
                continue
            self.shown.append(region)
            return region
        return None

    def show(self, region: Region, annotations: Labels | None) -> Shapes:
        """Move the view to ``region``, outline it, and select ``annotations`` to paint."""
        image = self.image
        flat = len(spatial_shape(image)) == 2
        y0, x0 = region.y, region.x
        height, width = spatial_shape(image)[-2:]
        y1, x1 = min(y0 + region.size, height), min(x0 + region.size, width)
        corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float) - 0.5
        if not flat:
            corners = np.column_stack([np.full(4, region.z), corners])
        outline = self._outline(corners, image)
        if not flat:
            world_z = image.data_to_world(corners[0])[0]
            self.viewer.dims.set_point(self.viewer.dims.ndim - 3, world_z)
        self.viewer.fit_to_view(layers=[outline], margin=0.15)
        if annotations is not None and annotations in self.viewer.layers:
            self.viewer.layers.selection.active = annotations
            annotations.mode = "paint"
        return outline

    def _outline(self, corners: np.ndarray, image: Image) -> Shapes:
        """The outline layer (made once, kept above the others), holding only this region."""
        layer = next((lay for lay in self.viewer.layers if lay.name == OUTLINE), None)
        if isinstance(layer, Shapes) and layer.ndim == corners.shape[1]:
            layer.data = [corners]
            layer.shape_type = ["rectangle"]
            return layer
        if layer is not None:
            self.viewer.layers.remove(layer)
        return self.viewer.add_shapes(
            [corners],
            shape_type="rectangle",
            name=OUTLINE,
            edge_color="yellow",
            face_color="transparent",
            edge_width=2,
            **placement(image),
        )
