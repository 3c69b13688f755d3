"""Between napari layers and the engine: data, axes, class names and colours."""

from colorsys import hsv_to_rgb
from dataclasses import dataclass, field

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import Colormap, DirectLabelColormap

from ..engine.annotations import (
    BACKGROUND,
    annotated_slices,
    count_classes,
    default_class_names,
)
from ..engine.images import MIN_SIDE, guess_volume

CLASS_NAMES_KEY = "napari_unet_class_names"
OUTPUT_KEY = "napari_unet_output"
STACK_KEY = "napari_unet_stack"
"""A stack's kind as the user chose it: {"volume": bool, "z_spacing": float}."""
MODEL_KEY = "napari_unet_model"
"""A result layer's model file: the kept round it came from is never pruned."""
EDITED_KEY = "napari_unet_edited"
PAINT_KEY = "napari_unet_paint"
CLASSES, OBJECTS = "classes", "objects"
OBJECT_COLORS = 1024

BACKGROUND_COLOR = (0.35, 0.55, 0.95, 0.5)
CLASS_COLORS = (
    (1.0, 0.72, 0.0, 1.0),
    (0.95, 0.25, 0.75, 1.0),
    (0.25, 0.85, 0.35, 1.0),
    (0.0, 0.85, 0.9, 1.0),
    (0.95, 0.3, 0.2, 1.0),
    (0.7, 0.5, 1.0, 1.0),
    (0.85, 0.9, 0.3, 1.0),
)
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def class_color(label: int) -> tuple[float, ...]:
    """The RGBA colour of annotation id ``label`` >= 1."""
    return (
        BACKGROUND_COLOR if label == BACKGROUND else CLASS_COLORS[(label - 2) % len(CLASS_COLORS)]
    )


def class_colormap(background_visible: bool = True) -> DirectLabelColormap:
    """Fixed colours per annotation id: background blue (or transparent), classes cycling."""
    colors = {None: TRANSPARENT, 0: TRANSPARENT}
    colors.update({label: class_color(label) for label in range(1, 256)})
    if not background_visible:
        colors[BACKGROUND] = TRANSPARENT
    return DirectLabelColormap(color_dict=colors)


def objects_colormap() -> DirectLabelColormap:
    """Background blue, then a different colour for each object id (cycling after 1024):
    hues a golden angle apart, alternating brightness, so that neighbours differ."""
    colors = {None: TRANSPARENT, 0: TRANSPARENT, BACKGROUND: BACKGROUND_COLOR}
    for i in range(OBJECT_COLORS):
        hue = (0.1 + i * 0.618034) % 1.0
        value = 1.0 if i % 2 else 0.8
        colors[i + 2] = (*hsv_to_rgb(hue, 0.75, value), 1.0)
    return DirectLabelColormap(color_dict=colors)


def paints_objects(layer: Labels) -> bool:
    """Whether each object is painted with its own id (2, 3, ...) in ``layer``."""
    return layer.metadata.get(PAINT_KEY) == OBJECTS


def snapshot(layer: Labels) -> np.ndarray:
    """A copy of the layer's full-resolution data: what is painted meanwhile does not change
    the round that trains on it."""
    return np.array(image_data(layer))


def probability_colormap(label: int) -> Colormap:
    """Black to the class colour, for probability layers blended additively over the image."""
    return Colormap([(0.0, 0.0, 0.0, 1.0), class_color(label)], name=f"U-Net class {label}")


def image_data(layer):
    """The full-resolution array of an image or labels layer (level 0 of a multiscale one)."""
    return layer.data[0] if layer.multiscale else layer.data


def placement(layer) -> dict:
    """The keyword arguments that put a new layer exactly over ``layer``."""
    return {
        "scale": layer.scale,
        "translate": layer.translate,
        "rotate": layer.rotate,
        "shear": layer.shear,
        "affine": layer.affine,
    }


def misplacement(layer, image) -> str | None:
    """How ``layer`` is placed otherwise than ``image`` in the viewer (scale, translate, rotate,
    shear or affine), e.g. "scale (1, 1) where 'nuclei' has (0.5, 0.5)"; None when it lies
    exactly over it."""
    wanted = placement(image)
    for name, ours in placement(layer).items():
        theirs = wanted[name]
        if name == "affine":
            ours, theirs = ours.affine_matrix, theirs.affine_matrix
        ours, theirs = np.asarray(ours, float), np.asarray(theirs, float)
        if ours.shape != theirs.shape or not np.allclose(ours, theirs):
            if name not in ("scale", "translate"):
                return name
            return f"{name} {_short(ours)} where '{image.name}' has {_short(theirs)}"
    return None


def _short(values: np.ndarray) -> str:
    return "(" + ", ".join(f"{value:g}" for value in values.ravel()) + ")"


def channel_axis(layer: Image) -> int | None:
    """RGB(A) layers hold their channels last; other napari image layers have none."""
    return -1 if layer.rgb else None


def channel_count(layer: Image) -> int:
    """The channels of the image the engine sees: those of an RGB(A) layer, else one."""
    return int(image_data(layer).shape[-1]) if layer.rgb else 1


def is_image_to_segment(layer: Image) -> bool:
    """Whether ``layer`` is an image, not a probability this plugin predicted."""
    return layer.metadata.get(OUTPUT_KEY) not in ("probability", "uncertainty")


def stack_kind(layer: Image) -> tuple[bool, float, bool]:
    """Whether a stack layer is a volume, its z spacing, and whether the user chose them (else
    they are guessed from the layer's axis labels and scale)."""
    stored = layer.metadata.get(STACK_KEY)
    if isinstance(stored, dict) and {"volume", "z_spacing"} <= set(stored):
        return bool(stored["volume"]), float(stored["z_spacing"]), True
    volume, spacing = guess_volume(getattr(layer, "axis_labels", None), list(layer.scale))
    return volume, spacing, False


def spatial_shape(layer: Image) -> tuple[int, ...]:
    """The image's shape without the RGB axis."""
    shape = tuple(image_data(layer).shape)
    return shape[:-1] if layer.rgb else shape


def unsuitable(layer: Image) -> str | None:
    """Why the dock cannot segment ``layer``, in the dock's words; None when it can."""
    shape = spatial_shape(layer)
    if len(shape) > 3:
        return (
            f"'{layer.name}' has {len(shape)} axes {shape}: the dock segments 2D images, stacks "
            "(Z, Y, X) and RGB images. Split it into stacks (right-click the layer › Split "
            "Stack), or give the command line its channel axis (napari-unet-loop train or "
            "predict --channel-axis)."
        )
    if len(shape) < 2 or min(shape[-2:]) < MIN_SIDE:
        size = "×".join(map(str, shape[-2:]))
        return (
            f"'{layer.name}' is {size} pixels per slice: the U-Net needs at least "
            f"{MIN_SIDE}×{MIN_SIDE}."
        )
    return None


def current_index(viewer, layer) -> int:
    """The index of the slice of ``layer`` shown in the viewer (0 for 2D layers)."""
    if layer.ndim < 3:
        return 0
    z = layer.world_to_data(viewer.dims.point)[0]
    return int(np.clip(round(z), 0, image_data(layer).shape[0] - 1))


def class_names(layer: Labels, count: int = 2) -> list[str]:
    """Names of ids 1..n stored with ``layer`` (n >= ``count``), defaults where missing."""
    stored = list(layer.metadata.get(CLASS_NAMES_KEY, []))
    count = max(count, len(stored), 2)
    defaults = default_class_names(count)
    return [stored[i] if i < len(stored) and stored[i] else defaults[i] for i in range(count)]


def stored_class_names(layer: Labels) -> list[str]:
    """The names stored with ``layer`` ("" where a name is missing), none for a layer not
    made or named in the dock."""
    return [
        name if isinstance(name, str) else "" for name in layer.metadata.get(CLASS_NAMES_KEY, [])
    ]


def set_class_names(layer: Labels, names: list[str]) -> None:
    layer.metadata[CLASS_NAMES_KEY] = list(names)


def is_unedited_output(layer, kind: str, shape: tuple[int, ...]) -> bool:
    """Whether ``layer`` is this plugin's ``kind`` output of ``shape``, not edited by the user."""
    return (
        layer.metadata.get(OUTPUT_KEY) == kind
        and not layer.metadata.get(EDITED_KEY, False)
        and tuple(layer.data.shape) == tuple(shape)
    )


@dataclass(frozen=True)
class Counts:
    """Pixels and slices annotated per id (objects counted as id 2), the annotated and all
    slices, the number of objects and the highest id."""

    pixels: dict = field(default_factory=dict)
    slices: dict = field(default_factory=dict)
    annotated: int = 0
    total: int = 1
    objects: int = 0
    highest: int = 0


def annotation_counts(data, objects: bool = False) -> Counts:
    """The counts of annotation ids, with ``objects`` (ids 2.. each one object) merged."""
    stack = data[None] if data.ndim == 2 else data.reshape((-1, *data.shape[-2:]))
    pixels: dict[int, int] = {}
    slices: dict[int, int] = {}
    ids: set[int] = set()
    picks = annotated_slices(stack)
    for z in picks:
        counts = count_classes(stack[z])
        ids.update(counts)
        if objects:
            merged = {label: n for label, n in counts.items() if label <= BACKGROUND}
            inside = sum(n for label, n in counts.items() if label > BACKGROUND)
            counts = {**merged, 2: inside} if inside else merged
        for label, count in counts.items():
            pixels[label] = pixels.get(label, 0) + count
            slices[label] = slices.get(label, 0) + 1
    found = sum(label > BACKGROUND for label in ids) if objects else 0
    return Counts(pixels, slices, len(picks), stack.shape[0], found, max(ids, default=0))


def free_name(viewer, name: str) -> str:
    """``name``, or ``name (2)``, ``name (3)``, ... : the first that no layer has."""
    taken = {layer.name for layer in viewer.layers}
    number = 2
    candidate = name
    while candidate in taken:
        candidate = f"{name} ({number})"
        number += 1
    return candidate
