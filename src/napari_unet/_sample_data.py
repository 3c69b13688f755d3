"""napari sample data: the DSB2018 nuclei image, alone or with annotations of its top rows."""

from .engine.annotations import default_class_names
from .samples import nuclei as _nuclei
from .samples import nuclei_annotations


def nuclei():
    return [(_nuclei(), {"name": "nuclei", "colormap": "gray"}, "image")]


def nuclei_annotated():
    from .widgets._layers import CLASS_NAMES_KEY, class_colormap

    names = default_class_names(2)
    names[1] = "nucleus"
    return nuclei() + [
        (
            nuclei_annotations(rows=128),
            {
                "name": "nuclei annotations",
                "metadata": {CLASS_NAMES_KEY: names},
                "colormap": class_colormap(),
            },
            "labels",
        )
    ]
