"""The command line's parser, built from the engine's settings: every numeric option is read
and checked by the setting's own :class:`~napari_unet.engine.checks.Bound`, so the command line
and the Python API accept and refuse the same values, with the same message."""

import argparse
import os
from pathlib import Path

from .. import PLUGIN, __version__
from ..engine.checks import Bound, field_bound
from ..engine.device import DEVICES
from ..engine.errors import UNetError
from ..engine.images import CHANNEL_AXIS
from ..engine.object_size import AUTO
from ..engine.objects import ObjectSettings
from ..engine.predict import BATCH_SIZE, INSTANCES_CLASS, TILE_SIZE
from ..engine.regions import COUNT as REGION_COUNT
from ..engine.regions import DEFAULT_REGION, REGION_SIZE
from ..engine.resizing import SCALE
from ..engine.train import FINE_TUNING_RATE, NEW_MODEL_RATE, TrainSettings
from ..engine.volume_objects import Z_SPACING
from ..storage.volumes import CHUNK, DEFAULT_CHUNK, WORKERS
from . import commands

MODEL_HELP = "a model file, a bioimage.io package exported by us, or a built-in model (nuclei)"
DESCRIPTION = "Annotate, train and predict with a U-Net: the napari plugin's engine, headless."


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line, like every other error."""

    def error(self, message: str):
        command = self.prog.partition(" ")[2]
        self.exit(2, f"{PLUGIN}: error: {command + ': ' if command else ''}{message}\n")


def _output(text: str) -> Path:
    """An output file name; a trailing slash (a folder) is refused."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(f"{text} names a folder; give a file name")
    return Path(text)


def _labels_output(text: str) -> Path:
    """Predict's output: a TIFF file, or an OME-Zarr folder for a zarr input."""
    return _output(text.rstrip("/" + os.sep) if ".zarr" in Path(text).name else text)


def _scale(text: str):
    """``auto`` or a scale factor."""
    if text == AUTO:
        return AUTO
    try:
        return SCALE.parse(text)
    except UNetError as error:
        raise argparse.ArgumentTypeError(
            str(error).replace("must be a number", f"must be '{AUTO}' or a number")
        ) from None


def reader(check: Bound):
    """An argparse ``type`` that reads and checks a value as ``check`` does."""

    def parse(text: str):
        try:
            return check.parse(text)
        except UNetError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = check.what  # argparse names the type in some messages
    return parse


def _field_option(parser, settings, name: str, help: str, default=None) -> None:
    """An option for the field ``name`` of the settings dataclass ``settings``."""
    flag = "--" + name.replace("_", "-")
    parser.add_argument(flag, type=reader(field_bound(settings, name)), default=default, help=help)


def _train_setting(parser, name: str, help: str, default=None) -> None:
    _field_option(parser, TrainSettings, name, help, default)


def parser() -> argparse.ArgumentParser:
    """The parser of every command; ``args.command(args)`` runs the one chosen."""
    top = _Parser(prog=PLUGIN, description=DESCRIPTION)
    top.add_argument("--version", action="version", version=f"{PLUGIN} {__version__}")
    subparsers = top.add_subparsers(required=True, metavar="COMMAND")
    _train_parser(subparsers)
    _predict_parser(subparsers)
    _export_parser(subparsers)
    info = subparsers.add_parser(
        "info", help="describe a model: a file, a bioimage.io package or a built-in model"
    )
    info.add_argument("model", type=Path)
    info.set_defaults(command=commands.info)
    models = subparsers.add_parser("models", help="list the built-in models")
    models.set_defaults(command=commands.models)
    demo = subparsers.add_parser("demo", help="open napari with the plugin and sample data")
    demo.set_defaults(command=commands.demo)
    return top


def _train_parser(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a model on annotated TIFF images")
    train.add_argument("image", type=Path, help="TIFF image, 2D (YX) or a stack (ZYX)")
    train.add_argument(
        "annotations",
        type=Path,
        help="TIFF of the image's spatial shape: 0 = none, 1 = background, 2.. = classes",
    )
    train.add_argument("-o", "--output", type=_output, required=True, help="model file to write")
    train.add_argument(
        "--from",
        dest="start",
        type=Path,
        help=f"model to fine-tune: {MODEL_HELP}",
    )
    train.add_argument(
        "--objects",
        action="store_true",
        help="the annotations paint each object with its own id (2, 3, ...; 1 = background): "
        "train one object class that learns to separate touching objects",
    )
    defaults = TrainSettings()
    _train_setting(
        train, "steps", f"training steps (default {defaults.steps}, or none with --time-limit)"
    )
    _train_setting(train, "time_limit", "stop after this many seconds")
    _train_setting(train, "batch_size", "patches per step (default: for the device)")
    _train_setting(
        train, "patch_size", "side of the training patches (default: for the device and image)"
    )
    _train_setting(train, "depth", "U-Net depth of a new model")
    _train_setting(train, "width", "base width of a new model")
    _train_setting(
        train,
        "learning_rate",
        f"default {NEW_MODEL_RATE:g} for a new model, {FINE_TUNING_RATE:g} with --from",
    )
    _train_setting(train, "w0", "border weight; 0 turns it off", defaults.w0)
    _train_setting(train, "sigma", "border weight width (px)", defaults.sigma)
    _train_setting(train, "seed", f"random seed (default {defaults.seed})", defaults.seed)
    _train_setting(
        train,
        "keep_start",
        "with --from: how strongly the model keeps its own sure answers where nothing is "
        f"annotated (default {defaults.keep_start}; 0: learn from the annotations alone)",
        defaults.keep_start,
    )
    train.add_argument(
        "--no-rescale",
        dest="rescale",
        action="store_false",
        help="with --from a model made for one object size (nuclei): train at the image's own "
        "scale (then predict with --scale 1), not rescaled to the model's object size",
    )
    _common(train, "replace an existing model file")
    train.set_defaults(command=commands.train)


def _predict_parser(subparsers) -> None:
    predict = subparsers.add_parser(
        "predict", help="predict a TIFF image, or a zarr / OME-Zarr volume, with a model"
    )
    predict.add_argument("model", type=Path, help=MODEL_HELP)
    predict.add_argument("image", type=Path, help="TIFF image, or a zarr / OME-Zarr folder")
    predict.add_argument(
        "-o",
        "--output",
        type=_labels_output,
        required=True,
        help="labels TIFF to write (an OME-Zarr folder for a zarr input)",
    )
    predict.add_argument("--probabilities", type=_output, help="also write class probabilities")
    predict.add_argument(
        "--instances",
        type=_output,
        nargs="?",
        const=commands.IN_THE_OUTPUT,
        metavar="TIFF",
        help="also write object ids (instances); for a zarr volume (with --volume) give no "
        "file: they go into the output OME-Zarr as labels/instances",
    )
    predict.add_argument(
        "--uncertainty",
        type=_output,
        help="also write how unsure the model is (float32, 0 sure .. 1 unsure)",
    )
    predict.add_argument(
        "--suggest",
        type=reader(REGION_COUNT),
        metavar="N",
        help="print the N regions where annotating next helps most (ranked by the doubt of "
        "the objects of --instances-class): slice y x size score",
    )
    predict.add_argument(
        "--region-size",
        type=reader(REGION_SIZE),
        default=DEFAULT_REGION,
        help=f"with --suggest: side of the regions in pixels (default {DEFAULT_REGION})",
    )
    predict.add_argument(
        "--annotations",
        type=Path,
        help="with --suggest: the image's annotations (TIFF); annotated areas are left out",
    )
    predict.add_argument(
        "--instances-class",
        type=reader(INSTANCES_CLASS),
        default=2,
        help="class id of the objects (default 2)",
    )
    objects = ObjectSettings()
    _field_option(
        predict,
        ObjectSettings,
        "split",
        "how eagerly touching objects are split: 0 never, 1 at any dip "
        f"(default {objects.split:g})",
        objects.split,
    )
    _field_option(
        predict,
        ObjectSettings,
        "min_size",
        "objects smaller than this many pixels are merged or dropped "
        f"(default {objects.min_size})",
        objects.min_size,
    )
    predict.add_argument(
        "--volume",
        action="store_true",
        help="the stack is a volume (ZYX): objects continue through z and get one id in 3D "
        "(default: a series of unrelated slices, objects per slice)",
    )
    predict.add_argument(
        "--z-spacing",
        type=reader(Z_SPACING),
        help="with --volume: the z step over the pixel size (default 1)",
    )
    predict.add_argument(
        "--scale",
        type=_scale,
        default=AUTO,
        help="rescale the image by this factor before predicting; 'auto' (default): by what "
        "brings its objects to the model's object size, for models that have one (nuclei)",
    )
    predict.add_argument("--tile-size", type=reader(TILE_SIZE))
    predict.add_argument("--batch-size", type=reader(BATCH_SIZE))
    _common(predict, "replace existing output files")
    predict.add_argument(
        "--chunk",
        type=reader(CHUNK),
        default=DEFAULT_CHUNK,
        help=f"zarr input: side of the output chunks predicted as one task "
        f"(default {DEFAULT_CHUNK})",
    )
    cluster = predict.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=reader(WORKERS),
        help="zarr input: predict on a local dask cluster of this many worker processes",
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="zarr input: predict on the dask.distributed cluster of this scheduler",
    )
    predict.set_defaults(command=commands.predict)


def _export_parser(subparsers) -> None:
    export = subparsers.add_parser(
        "export", help="write a model as a bioimage.io package (Fiji, ilastik, QuPath, zoo)"
    )
    export.add_argument("model", type=Path, help=MODEL_HELP)
    export.add_argument(
        "-o", "--output", type=_output, required=True, help="package (.zip) to write"
    )
    export.add_argument("--name", help="the model's name (default: from its classes)")
    export.add_argument("--description", help="one sentence on what the model segments")
    export.add_argument("--author", action="append", help="an author's name (repeat for several)")
    export.add_argument("--license", default="CC-BY-4.0", help="SPDX licence of the weights")
    export.add_argument(
        "--test-image", type=Path, help="TIFF whose top-left corner becomes the test input"
    )
    export.add_argument("--overwrite", action="store_true", help="replace an existing package")
    export.set_defaults(command=commands.export)


def _common(parser: argparse.ArgumentParser, overwrite: str) -> None:
    parser.add_argument(
        "--channel-axis",
        type=reader(CHANNEL_AXIS),
        help="axis of the image holding channels (default: a last axis of 3 or 4 is RGB)",
    )
    parser.add_argument("--device", default="auto", choices=DEVICES)
    parser.add_argument("--overwrite", action="store_true", help=overwrite)
