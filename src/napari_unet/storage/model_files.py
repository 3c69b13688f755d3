"""Model files: weights and config in one safetensors file, which cannot run code on load.

The config (architecture, class names, normalisation, training history, versions) is JSON in
the file's metadata, readable with any safetensors reader or ``napari-unet-loop info``. A file is
read once, and its config and tensor shapes are checked before any network is built. Files are
written through a temporary file and renamed (see :mod:`.output_files`), so a crash never
leaves half a model, and an existing file is only replaced when asked to.
"""

import io
import json
import math
import os
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from .. import __version__
from ..engine.annotations import MAX_CLASSES
from ..engine.errors import ModelFileError, UNetError, os_error_message
from ..engine.images import Normalization
from ..engine.model import UNet, UNetConfig
from ..engine.segmenter import OBJECT_DIAMETER, Segmenter, check_class_names
from ..models import resolve
from .output_files import reserve

FORMAT = "napari-unet"
FORMAT_VERSION = 1
SUFFIX = ".safetensors"
PACKAGE_SUFFIXES = (".zip", ".yaml", ".yml")
MAX_HEADER_BYTES = 16 * 2**20
MAX_IN_CHANNELS = 64
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4}


def save_model(segmenter: Segmenter, path: str | Path, overwrite: bool = False) -> Path:
    """Write ``segmenter`` to ``path`` atomically and return the path.

    An existing file is refused unless ``overwrite`` is true, and even then when it is not a
    napari-unet-loop model. Missing parent folders are created.
    """
    data = model_bytes(segmenter)
    path = _as_path(path)
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder; give a file name such as model{SUFFIX}")
    check_model_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ModelFileError(f"cannot write {path}: {os_error_message(error)}") from None
    with reserve(
        [path],
        overwrite=overwrite,
        hint="pass overwrite=True to replace it",
        replaceable=not_a_model,
        needed_bytes=len(data),
    ) as outputs:
        (path,) = outputs.commit([lambda file: file.write(data)])
    return path


def check_model_name(path: Path) -> None:
    """Refuse a model file name that would be read back as a bioimage.io package."""
    if path.suffix.lower() in PACKAGE_SUFFIXES:
        raise ModelFileError(
            f"{path.name} would be read back as a bioimage.io package: name a model file "
            f"*{SUFFIX}, and export a model to write a package"
        )


def model_bytes(segmenter: Segmenter) -> bytes:
    """The content of a model file for ``segmenter``."""
    config = model_config(segmenter)
    state = {k: v.detach().cpu().contiguous() for k, v in segmenter.net.state_dict().items()}
    return state_bytes(state, config)


def model_config(segmenter: Segmenter) -> dict:
    """The config a model file stores: architecture, classes, normalisation, history and,
    when the model has one, its object diameter."""
    if not isinstance(segmenter, Segmenter):
        raise UNetError(f"a trained Segmenter is needed to save a model, not {type(segmenter)}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "napari_unet_version": __version__,
        "architecture": segmenter.config.to_dict(),
        "class_names": segmenter.class_names,
        "normalization": segmenter.normalization.to_dict(),
        "history": segmenter.history,
        **({"object_diameter": d} if (d := segmenter.object_diameter) is not None else {}),
    }


def state_bytes(state: dict, config: dict) -> bytes:
    """A model file's content from weights and a config (checked only when loaded)."""
    return save(state, metadata={FORMAT: json.dumps(config)})


def not_a_model(path: Path) -> str | None:
    """Why ``path`` must not be replaced by a model (None for a napari-unet-loop model)."""
    try:
        read_config(path)
    except ModelFileError:
        return "exists and is not a napari-unet-loop model"
    return None


def weights_bytes(config: UNetConfig) -> int:
    """The size of the float32 weights of a U-Net, computed without allocating them."""
    return sum(4 * math.prod(shape) for shape in _expected_shapes(config).values())


def read_config(path: str | Path) -> dict:
    """The JSON config of a model file, checked for format, version and consistency."""
    path = existing_file(path)
    try:
        with open(path, "rb") as file:
            config, _, _ = _read_header(file, path.name)
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {os_error_message(error)}") from None
    return config


def read_model_file(path: str | Path) -> Segmenter:
    """Read a model file written by :func:`save_model` (or a built-in model, by name)."""
    path = existing_file(path)
    name = path.name
    try:
        with open(path, "rb") as file:
            _, _, end = _read_header(file, name)
            if os.fstat(file.fileno()).st_size != end:
                raise ModelFileError(f"{name} is damaged: its size does not match its header")
            file.seek(0)
            data = file.read(end)
    except OSError as error:
        raise ModelFileError(f"cannot read {path}: {os_error_message(error)}") from None
    return load_model_bytes(data, name)


def load_model_bytes(data: bytes, name: str = "the model") -> Segmenter:
    """A model from the content of a model file, checked as :func:`load_model` checks files."""
    config, architecture, end = _read_header(io.BytesIO(data), name)
    if len(data) != end:
        raise ModelFileError(f"{name} is damaged: its size does not match its header")
    try:
        state = load(data)
        net = UNet(architecture)
        net.load_state_dict(state)
    except (SafetensorError, RuntimeError, ValueError) as error:
        raise ModelFileError(
            f"{name} is damaged or incompatible with this napari-unet-loop: {error}"
        ) from None
    if not all(bool(torch.isfinite(tensor).all()) for tensor in state.values()):
        raise ModelFileError(f"{name} is damaged: some of its weights are not numbers")
    return Segmenter(
        net.eval(),
        list(config["class_names"]),
        Normalization(**config["normalization"]),
        list(config["history"]),
        config.get("object_diameter"),
    )


def _as_path(path) -> Path:
    if not isinstance(path, str | os.PathLike):
        raise UNetError(f"a file name is needed, not {type(path).__name__}")
    return Path(path)


def existing_file(path) -> Path:
    """``path`` (or the built-in model it names), checked to be a regular file."""
    path = resolve(_as_path(path))
    if not path.exists():
        raise ModelFileError(f"{path} does not exist")
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a napari-unet-loop model file")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a regular file, not a napari-unet-loop model file")
    return path


def _read_header(file, name: str) -> tuple[dict, UNetConfig, int]:
    """Config, architecture and file size from an open model file's header, all checked."""
    not_ours = f"{name} is not a napari-unet-loop model (not a readable safetensors file)"
    start = file.read(8)
    if len(start) < 8:
        raise ModelFileError(not_ours)
    length = int.from_bytes(start, "little")
    if length > MAX_HEADER_BYTES:
        raise ModelFileError(not_ours)
    try:
        header = json.loads(file.read(length))
    except (ValueError, RecursionError):
        raise ModelFileError(not_ours) from None
    if not isinstance(header, dict):
        raise ModelFileError(not_ours)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or FORMAT not in metadata:
        raise ModelFileError(f"{name} is a safetensors file but not a napari-unet-loop model")
    try:
        config = json.loads(metadata[FORMAT])
    except (TypeError, ValueError, RecursionError):
        raise ModelFileError(f"{name} has a damaged model config") from None
    if not isinstance(config, dict):
        raise ModelFileError(f"{name} has a damaged model config")
    version = config.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ModelFileError(
            f"{name} has a damaged model config: its format_version {version!r} is not a "
            "version number"
        )
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name} was written by napari-unet-loop {_short(config.get('napari_unet_version'))} "
            f"in a newer file format ({version}); update napari-unet-loop "
            "(pip install -U napari-unet-loop) to load it"
        )
    architecture = check_config(config, name)
    data_bytes = _check_tensors(header, _expected_shapes(architecture), name)
    return config, architecture, 8 + length + data_bytes


def check_config(config: dict, name: str) -> UNetConfig:
    """The architecture of a config whose fields are all of the right kind and in bounds."""

    def damaged(what: str) -> ModelFileError:
        return ModelFileError(f"{name} has a damaged model config: {what}")

    for key in ("architecture", "class_names", "normalization", "history"):
        if key not in config:
            raise damaged(f"'{key}' is missing")
    arch = config["architecture"]
    names = {f.name for f in fields(UNetConfig)}
    if not isinstance(arch, dict) or set(arch) != names:
        raise damaged(f"the architecture must give {', '.join(sorted(names))}")
    if any(isinstance(arch[k], bool) or not isinstance(arch[k], int) for k in names - {"norm"}):
        raise damaged("the architecture's sizes must be integers")
    if not 1 <= arch["in_channels"] <= MAX_IN_CHANNELS or not 2 <= arch["n_classes"] <= (
        MAX_CLASSES
    ):
        raise damaged(
            f"a U-Net has 1..{MAX_IN_CHANNELS} input channels and 2..{MAX_CLASSES} classes"
        )
    try:
        architecture = UNetConfig(**arch)
    except (TypeError, ValueError) as error:
        raise damaged(str(error)) from None
    class_names = config["class_names"]
    if not isinstance(class_names, list):
        raise damaged("class names must be a list of texts")
    try:
        check_class_names(class_names)
    except UNetError as error:
        raise damaged(str(error)) from None
    if len(class_names) != architecture.n_classes:
        raise ModelFileError(
            f"{name} names {len(class_names)} classes but has {architecture.n_classes} outputs"
        )
    normalization = config["normalization"]
    if not isinstance(normalization, dict):
        raise damaged("the normalisation must be a mapping")
    try:
        checked = Normalization(**normalization)
    except (TypeError, UNetError) as error:
        raise damaged(f"normalisation: {error}") from None
    if checked.low and len(checked.low) != architecture.in_channels:
        raise damaged("the normalisation does not match the input channels")
    history = config["history"]
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise damaged("the training history must be a list of rounds")
    diameter = config.get("object_diameter")
    if diameter is not None:
        try:
            OBJECT_DIAMETER.check(diameter)
        except UNetError as error:
            raise damaged(str(error)) from None
    return architecture


def _short(value) -> str:
    """A version as written in a config, or "?" when it is not a short text."""
    return value if isinstance(value, str) and len(value) <= 20 and value.isprintable() else "?"


def _expected_shapes(config: UNetConfig) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a U-Net, from a network built without memory."""
    with torch.device("meta"):
        net = UNet(config)
    return {key: tuple(tensor.shape) for key, tensor in net.state_dict().items()}


def _check_tensors(header: dict, expected: dict[str, tuple[int, ...]], name: str) -> int:
    """Check the header's tensors against the architecture; return the size of their data."""
    if set(header) != set(expected):
        raise ModelFileError(
            f"{name} is damaged or incompatible with this napari-unet-loop: its tensors do not "
            "match its architecture"
        )
    end = 0
    for key, entry in header.items():
        try:
            dtype, shape, (first, last) = entry["dtype"], entry["shape"], entry["data_offsets"]
            size = DTYPE_BYTES[dtype] * math.prod(shape)
        except (KeyError, TypeError, ValueError):
            raise ModelFileError(f"{name} is damaged: tensor {key} is badly described") from None
        if tuple(shape) != expected[key]:
            raise ModelFileError(
                f"{name} is damaged or incompatible with this napari-unet-loop: tensor {key} has "
                f"shape {tuple(shape)}, the architecture needs {expected[key]}"
            )
        if not isinstance(first, int) or not isinstance(last, int) or last - first != size:
            raise ModelFileError(f"{name} is damaged: tensor {key} is badly described")
        end = max(end, last)
    return end
