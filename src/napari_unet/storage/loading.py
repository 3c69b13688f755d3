"""Any model by its name: a model file, a bioimage.io package exported by us, or a built-in
model ("nuclei"; a file of that name wins)."""

import contextlib
import zipfile
from pathlib import Path

from ..engine.segmenter import Segmenter
from .bioimageio import import_model
from .model_files import PACKAGE_SUFFIXES, existing_file, read_model_file


def load_model(path: str | Path) -> Segmenter:
    """Read a model file written by ``save_model``, a bioimage.io package exported by
    napari-unet-loop (a ``.zip``, or its unpacked ``rdf.yaml``) or a built-in model."""
    path = existing_file(path)
    if is_package(path):
        return import_model(path)
    return read_model_file(path)


def is_package(path: Path) -> bool:
    """A bioimage.io package by its name, or a zip file holding an rdf.yaml."""
    if path.suffix.lower() in PACKAGE_SUFFIXES:
        return True
    with contextlib.suppress(OSError, zipfile.BadZipFile), zipfile.ZipFile(path) as archive:
        return "rdf.yaml" in archive.namelist()
    return False
