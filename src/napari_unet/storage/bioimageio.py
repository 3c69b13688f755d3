"""bioimage.io model packages (format 0.5): export a model to share it with Fiji (deepImageJ),
ilastik, QuPath and the model zoo, and import such a package when its architecture is ours.

A package is one zip file: ``rdf.yaml`` (the description), the weights as a PyTorch state dict
with the architecture's source (``unet.py``, this package's ``model.py``) and, where the network
traces, as TorchScript; a test input with its expected output, a cover picture and a README.
The percentile normalisation is the input's preprocessing and the softmax the output's
postprocessing, so any bioimage.io consumer computes what ``predict`` does. Our
config (class names, normalisation, history) is kept under ``config.napari_unet`` for import.
"""

import difflib
import functools
import importlib.resources
import inspect
import io
import re
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import yaml

from .. import __version__
from ..engine import checks, errors, model
from ..engine.errors import ModelFileError, UNetError
from ..engine.segmenter import Segmenter
from .model_files import (
    check_config,
    existing_file,
    load_model_bytes,
    model_config,
    state_bytes,
    weights_bytes,
)
from .output_files import reserve
from .untrusted import load_yaml, read_member, read_regular_file

FORMAT_VERSION = "0.5.4"
RDF = "rdf.yaml"
MAX_NAME = 128
NAME = re.compile(rf"[A-Za-z0-9_+\-() ]{{1,{MAX_NAME}}}")
"""The model names bioimage.io accepts."""
STATE_DICT = "weights.pt"
TORCHSCRIPT = "weights_torchscript.pt"
SOURCE = "unet.py"
BUILDER = "unet_from_architecture"
TEST_SIDE = 64
CONFIG = "napari_unet"
"""The key of our model config under the package's ``config`` (a file-format key: kept)."""
DESCRIPTION = f"the package's {RDF}"
MAX_RDF_BYTES = 4 * 2**20
UNREADABLE_ZIP = (OSError, KeyError, zipfile.BadZipFile, RuntimeError, NotImplementedError)
"""What reading a member of a damaged, encrypted or oddly compressed zip raises."""


def export_model(
    segmenter: Segmenter,
    path: str | Path,
    *,
    name: str | None = None,
    description: str | None = None,
    authors: list[str] | None = None,
    license: str = "CC-BY-4.0",
    test_image: np.ndarray | None = None,
    overwrite: bool = False,
    inputs: dict[str | Path, str] | None = None,
) -> Path:
    """Write ``segmenter`` as a bioimage.io model package (a ``.zip``) and return its path.

    ``test_image`` is a (Y, X) or (Y, X, C) image for the package's test input (by default a
    synthetic one); it is cropped to a multiple of the network's pooling size. With
    ``overwrite``, only a bioimage.io package is replaced, never one of ``inputs`` (the files
    the model and test image came from, mapped to what they are).
    """
    if not isinstance(segmenter, Segmenter):
        raise UNetError(f"a trained Segmenter is needed to export a model, not {type(segmenter)}")
    if authors is not None and (not authors or not all(isinstance(a, str) and a for a in authors)):
        raise UNetError("authors must be a list of names")
    path = Path(path)
    if path.suffix.lower() != ".zip":
        raise UNetError(f"a bioimage.io package is a .zip file, not {path.name}")
    name = _package_name(name, segmenter.class_names)
    _check_license(license)
    files = _package_files(segmenter, name, description, authors, license, test_image)
    with reserve(
        [path],
        overwrite=overwrite,
        inputs=inputs,
        hint="choose another name",
        replaceable=_not_a_package,
    ) as outputs:
        (path,) = outputs.commit([lambda file: file.write(_zip(files))])
    return path


def import_model(path: str | Path) -> Segmenter:
    """The model of a bioimage.io package exported by napari-unet-loop (``.zip`` or
    ``rdf.yaml``), read within bounds whatever the package claims (see :mod:`.untrusted`)."""
    path = existing_file(path)
    try:
        if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as package:
                rdf = _description(read_member(package, RDF, MAX_RDF_BYTES, DESCRIPTION))
                source, limit = _weights_source(rdf)
                state = read_member(package, source, limit, "the weights")
        else:
            rdf = _description(read_regular_file(path, MAX_RDF_BYTES, DESCRIPTION))
            source, limit = _weights_source(rdf)
            state = read_regular_file(path.parent / source, limit, "the weights")
    except UNREADABLE_ZIP as error:
        raise ModelFileError(
            f"{path.name} is not a readable bioimage.io package: {error}"
        ) from None
    return load_model_bytes(
        state_bytes(_state_dict(state, path.name), rdf["config"][CONFIG]), path.name
    )


def _state_dict(data: bytes, name: str) -> dict:
    """The tensors of a PyTorch state dict file, loaded without running any code in it."""
    try:
        weights = torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
    except Exception:
        raise ModelFileError(
            f"{name} holds weights that are not a plain PyTorch state dict (refused unread)"
        ) from None
    if not isinstance(weights, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) and _stored(v)
        for k, v in weights.items()
    ):
        raise ModelFileError(f"{name} holds weights that are not a PyTorch state dict of tensors")
    return {k: v.clone() for k, v in weights.items()}  # tensors of their own: none shared


def _stored(tensor: torch.Tensor) -> bool:
    """A dense tensor whose values are all in the file (not a view repeating a few of them)."""
    return (
        tensor.layout == torch.strided
        and tensor.numel() * tensor.element_size() <= tensor.untyped_storage().nbytes()
    )


def _not_a_package(path: Path) -> str | None:
    """Why ``path`` must not be replaced by a package (None for a bioimage.io package)."""
    try:
        with zipfile.ZipFile(path) as package:
            rdf = load_yaml(read_member(package, RDF, MAX_RDF_BYTES, DESCRIPTION), DESCRIPTION)
    except (*UNREADABLE_ZIP, ModelFileError):
        rdf = None
    if isinstance(rdf, dict) and rdf.get("type") == "model":
        return None
    return "exists and is not a bioimage.io model package"


def _description(data: bytes) -> dict:
    """The parsed rdf.yaml of a package exported by napari-unet-loop."""
    rdf = load_yaml(data, DESCRIPTION)
    if not isinstance(rdf, dict) or rdf.get("type") != "model":
        raise ModelFileError(f"the package's {RDF} does not describe a model")
    config = rdf.get("config")
    if not isinstance(config, dict) or not isinstance(config.get(CONFIG), dict):
        raise ModelFileError(
            "this bioimage.io model was not exported by napari-unet-loop: its architecture is "
            "not ours, so napari-unet-loop cannot load it"
        )
    return rdf


def _weights_source(rdf: dict) -> tuple[str, int]:
    """The weights' file name in the package and the most bytes they can take, from the
    architecture the package's config describes (checked before the weights are read)."""
    architecture = check_config(rdf["config"][CONFIG], f"the package's {RDF}")
    try:
        source = rdf["weights"]["pytorch_state_dict"]["source"]
    except (KeyError, TypeError):
        raise ModelFileError("the package has no PyTorch state dict weights") from None
    if not isinstance(source, str) or "/" in source or "\\" in source or source.startswith("."):
        raise ModelFileError(f"the package's weights are not a file inside it: {source!r}")
    return source, 2 * weights_bytes(architecture) + 2**20


def _package_files(segmenter, name, description, authors, license, test_image) -> dict:
    """Every file of the package, by name."""
    net = segmenter.net.to("cpu").eval().float()
    test_input = _test_input(segmenter, test_image)
    with torch.no_grad():
        logits = net(torch.from_numpy(_normalized(segmenter, test_input)))
    test_output = torch.softmax(logits.float(), dim=1).numpy()
    files = {
        STATE_DICT: _torch_bytes({k: v.detach().clone() for k, v in net.state_dict().items()}),
        SOURCE: _architecture_source().encode(),
        "test_input.npy": _npy(test_input),
        "test_output.npy": _npy(test_output),
        "cover.png": _cover(test_input, test_output),
        "README.md": _readme(segmenter, name).encode(),
    }
    scripted = _torchscript(net, test_input)
    if scripted is not None:
        files[TORCHSCRIPT] = scripted
    rdf = _rdf(segmenter, name, description, authors, license, sorted(files))
    files[RDF] = yaml.safe_dump(rdf, sort_keys=False, allow_unicode=True).encode()
    return files


def _rdf(segmenter, name, description, authors, license, files) -> dict:
    c = segmenter.config
    multiple = c.multiple
    names = segmenter.class_names
    classes = ", ".join(names[1:])
    weights = {
        "pytorch_state_dict": {
            "source": STATE_DICT,
            "architecture": {
                "source": SOURCE,
                "callable": BUILDER,
                "kwargs": c.to_dict(),
            },
            "pytorch_version": torch.__version__.split("+")[0],
        }
    }
    if TORCHSCRIPT in files:
        weights["torchscript"] = {
            "source": TORCHSCRIPT,
            "parent": "pytorch_state_dict",
            "pytorch_version": torch.__version__.split("+")[0],
        }
    space = {"min": multiple, "step": multiple}
    return {
        "type": "model",
        "format_version": FORMAT_VERSION,
        "name": name,
        "description": description
        or f"A 2D U-Net segmenting {classes} from background, trained in napari with "
        "napari-unet-loop.",
        "authors": [{"name": a} for a in (authors or ["napari-unet-loop user"])],
        "cite": [
            {
                "text": "Ronneberger, Fischer and Brox. U-Net: Convolutional Networks for "
                "Biomedical Image Segmentation. MICCAI 2015.",
                "doi": "10.1007/978-3-319-24574-4_28",
            }
        ],
        "license": license,
        "tags": ["unet2d", "pytorch", "segmentation", "napari-unet-loop"],
        "documentation": "README.md",
        "covers": ["cover.png"],
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": [
            {
                "id": "raw",
                "description": "image, normalised per channel between its percentiles",
                "axes": [
                    {"type": "batch"},
                    {
                        "type": "channel",
                        "channel_names": [f"channel{i}" for i in range(c.in_channels)],
                    },
                    {"type": "space", "id": "y", "size": space},
                    {"type": "space", "id": "x", "size": space},
                ],
                "test_tensor": {"source": "test_input.npy"},
                "preprocessing": [
                    {"id": "ensure_dtype", "kwargs": {"dtype": "float32"}},
                    _normalization_step(segmenter),
                ],
            }
        ],
        "outputs": [
            {
                "id": "probabilities",
                "description": "probability of each class; class i is annotation id i + 1",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": _identifiers(names)},
                    {"type": "space", "id": "y", "size": {"tensor_id": "raw", "axis_id": "y"}},
                    {"type": "space", "id": "x", "size": {"tensor_id": "raw", "axis_id": "x"}},
                ],
                "data": {"type": "float32", "range": [0.0, 1.0]},
                "test_tensor": {"source": "test_output.npy"},
                "postprocessing": [{"id": "softmax", "kwargs": {"axis": "channel"}}],
            }
        ],
        "weights": weights,
        "config": {
            "bioimageio": {
                "reproducibility_tolerance": [
                    {"relative_tolerance": 1e-3, "absolute_tolerance": 1e-4}
                ]
            },
            CONFIG: model_config(segmenter),
        },
    }


def _architecture_source() -> str:
    """``model.py`` (with the errors and checks it uses) as one file that needs only torch,
    with a builder taking the config."""
    own = [inspect.getsource(module) for module in (errors, checks, model)]
    lines = [
        line
        for part in own
        for line in part.splitlines()
        if not line.startswith("from .") and not line.startswith('"""Errors')
    ]
    return "\n".join(lines) + (
        f"\n\n\ndef {BUILDER}(**architecture) -> UNet:\n"
        '    """The U-Net of a napari-unet-loop architecture config."""\n'
        "    return UNet(UNetConfig(**architecture))\n"
    )


def _normalization_step(segmenter: Segmenter) -> dict:
    n = segmenter.normalization
    if n.mode == "fixed" and n.low:
        low = np.asarray(n.low, dtype=np.float64)
        gain = 1.0 / n.spread()
        return {
            "id": "scale_linear",
            "kwargs": {"axis": "channel", "gain": gain.tolist(), "offset": (-low * gain).tolist()},
        }
    return {
        "id": "scale_range",
        "kwargs": {
            "axes": ["y", "x"],
            "min_percentile": n.low_percentile,
            "max_percentile": n.high_percentile,
        },
    }


def _normalized(segmenter: Segmenter, test_input: np.ndarray) -> np.ndarray:
    """``test_input`` (1, C, Y, X) as the package's preprocessing normalises it."""
    stack = test_input.transpose(0, 2, 3, 1)
    normalization = segmenter.normalization.for_image(stack)
    return normalization.apply(test_input.astype(np.float32), channel_axis=1)


def _test_input(segmenter: Segmenter, image: np.ndarray | None) -> np.ndarray:
    """A (1, C, Y, X) float32 test input, a multiple of the pooling size on each side."""
    c, multiple = segmenter.in_channels, segmenter.config.multiple
    if image is None:
        yy, xx = np.mgrid[:TEST_SIDE, :TEST_SIDE]
        blobs = np.sin(yy / 5.0) * np.cos(xx / 7.0) + 0.1 * np.random.default_rng(0).random(
            (TEST_SIDE, TEST_SIDE)
        )
        image = np.repeat(blobs[..., None], c, axis=-1)
    image = np.asarray(image)
    if image.dtype.kind not in "biuf":
        raise UNetError(f"the test image must hold real numbers, not {image.dtype}")
    image = image.astype(np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] != c:
        raise UNetError(f"the test image must be (Y, X) or (Y, X, {c}), not {image.shape}")
    height, width = (side // multiple * multiple for side in image.shape[:2])
    if not height or not width:
        raise UNetError(f"the test image must be at least {multiple}x{multiple} pixels")
    if not np.isfinite(image).all():
        raise UNetError("the test image contains NaN or infinite values")
    return np.ascontiguousarray(image[:height, :width].transpose(2, 0, 1)[None])


def _torchscript(net: torch.nn.Module, test_input: np.ndarray) -> bytes | None:
    """The traced network, or None where it does not trace to the same output."""
    example = torch.from_numpy(test_input)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(net, example, check_trace=False)
            if not torch.allclose(traced(example), net(example), atol=1e-5):
                return None
            buffer = io.BytesIO()
            torch.jit.save(traced, buffer)
    except Exception:
        return None
    return buffer.getvalue()


def _torch_bytes(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _cover(test_input: np.ndarray, test_output: np.ndarray) -> bytes:
    """A 2:1 picture: the test input beside its predicted classes."""
    from PIL import Image

    image = test_input[0].mean(0)
    low, high = np.percentile(image, [1, 99.8])
    gray = np.clip((image - low) / max(high - low, 1e-6), 0, 1)
    classes = test_output[0].argmax(0)
    palette = np.array(
        [[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66], [0, 114, 178]]
    )
    colours = palette[np.minimum(classes, len(palette) - 1)] / 255.0
    colours[classes == 0] = gray[classes == 0, None]
    left = np.repeat(gray[..., None], 3, axis=-1)
    picture = (np.concatenate([left, colours], axis=1) * 255).astype(np.uint8)
    scale = max(1, 256 // picture.shape[0])
    picture = picture.repeat(scale, 0).repeat(scale, 1)
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    return buffer.getvalue()


def _readme(segmenter: Segmenter, name: str | None) -> str:
    c, names, rounds = segmenter.config, segmenter.class_names, segmenter.history
    lines = [
        f"# {name or 'napari-unet-loop model'}",
        "",
        f"A 2D U-Net (depth {c.depth}, base width {c.width}, {c.in_channels} input channel(s)) "
        f"trained with napari-unet-loop {__version__} from sparse annotations in napari.",
        "",
        "## Classes",
        "",
        *[f"- channel {i} (annotation id {i + 1}): {n}" for i, n in enumerate(names)],
        "",
        "## Input",
        "",
        "Each 2D image is normalised per channel between its "
        f"{segmenter.normalization.low_percentile}th and "
        f"{segmenter.normalization.high_percentile}th percentiles (the preprocessing step); "
        f"height and width must be multiples of {c.multiple}. Stacks are predicted slice by "
        "slice.",
        "",
        "## Training",
        "",
    ]
    lines += [f"- {line}" for line in segmenter.rounds()]
    if not rounds:
        lines.append("- not trained")
    lines += [
        "",
        "## Validation",
        "",
        "Validated only on the annotations it was trained from (a held-back part of them). "
        "Check its predictions on your own images before relying on them.",
        "",
    ]
    return "\n".join(lines)


def _check_license(license) -> None:
    """bioimage.io takes a model's licence as an SPDX id (e.g. "MIT", "CC-BY-4.0")."""
    ids = _license_ids()
    if isinstance(license, str) and license in ids:
        return
    text = license if isinstance(license, str) else ""
    alike = [i for i in ids if i.lower() == text.lower()] or difflib.get_close_matches(
        text, ids, n=3
    )
    hint = f": did you mean {' or '.join(alike)}?" if alike else " (see spdx.org/licenses)"
    raise UNetError(
        f"the licence {license!r} is not an SPDX licence id, which bioimage.io needs{hint}"
    )


@functools.cache
def _license_ids() -> frozenset[str]:
    text = importlib.resources.files(__package__).joinpath("spdx_licenses.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def _package_name(name: str | None, class_names: list[str]) -> str:
    """``name`` if bioimage.io takes it (at most 128 of A-Z a-z 0-9 _ + - ( ) and spaces),
    else an error; without one, one made of the classes, other characters made spaces."""
    if name is not None:
        if not NAME.fullmatch(name) or not name.strip():
            raise UNetError(
                f"a bioimage.io model name holds 1 to {MAX_NAME} letters A-Z, digits, spaces "
                f"and _ + - ( ): {name!r} does not"
            )
        return name
    made = f"napari-unet-loop {' + '.join(class_names[1:])}"
    return " ".join(re.sub(r"[^A-Za-z0-9_+\-() ]", " ", made).split())[:MAX_NAME]


def _identifiers(names: list[str]) -> list[str]:
    """Channel names as bioimage.io accepts them, distinct."""
    result = []
    for i, name in enumerate(names):
        cleaned = "".join(ch if ch.isalnum() else "_" for ch in name).strip("_") or f"class{i}"
        if cleaned in result:
            cleaned = f"{cleaned}_{i}"
        result.append(cleaned)
    return result


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as package:
        for name, data in files.items():
            package.writestr(name, data)
    return buffer.getvalue()
