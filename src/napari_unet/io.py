"""Model files: weights and config in one safetensors file, which cannot run code on load.

The config (architecture, class names, normalisation, training history, versions) is JSON in
the file's metadata, readable with any safetensors reader or ``napari-unet info``. Files are
written to a temporary file beside the target and renamed, so a crash never leaves half a model.
"""

import json
import os
import tempfile
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import __version__
from .errors import ModelFileError
from .images import Normalization
from .model import UNet, UNetConfig
from .segmenter import Segmenter

FORMAT = "napari-unet"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"


def save_model(segmenter: Segmenter, path: str | Path) -> Path:
    """Write ``segmenter`` to ``path`` atomically and return the path."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give a file name such as model{SUFFIX}")
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "napari_unet_version": __version__,
        "architecture": segmenter.config.to_dict(),
        "class_names": segmenter.class_names,
        "normalization": segmenter.normalization.to_dict(),
        "history": segmenter.history,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in segmenter.net.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        save_file(state, temporary, metadata={FORMAT: json.dumps(config)})
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_config(path: str | Path) -> dict:
    """The JSON config of a model file, checked for format and version."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a napari-unet model file")
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise ModelFileError(
            f"{path.name} is not a napari-unet model (not a readable safetensors file: {error})"
        ) from None
    if FORMAT not in metadata:
        raise ModelFileError(f"{path.name} is a safetensors file but not a napari-unet model")
    try:
        config = json.loads(metadata[FORMAT])
    except json.JSONDecodeError:
        raise ModelFileError(f"{path.name} has a damaged model config") from None
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path.name} was written by napari-unet {config.get('napari_unet_version', '?')} "
            f"in a newer file format ({version}); update napari-unet to load it"
        )
    return config


def load_model(path: str | Path) -> Segmenter:
    """Read a model file written by :func:`save_model`."""
    path = Path(path)
    config = read_config(path)
    try:
        architecture = UNetConfig(**config["architecture"])
        net = UNet(architecture)
        state = {}
        with safe_open(path, framework="pt") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                state[key] = f.get_tensor(key)
        net.load_state_dict(state)
        segmenter = Segmenter(
            net.eval(),
            list(config["class_names"]),
            Normalization(**config["normalization"]),
            list(config.get("history", [])),
        )
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as error:
        raise ModelFileError(
            f"{path.name} is damaged or incompatible with this napari-unet: {error}"
        ) from None
    if len(segmenter.class_names) != architecture.n_classes:
        raise ModelFileError(
            f"{path.name} names {len(segmenter.class_names)} classes "
            f"but has {architecture.n_classes} outputs"
        )
    return segmenter
