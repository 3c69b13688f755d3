"""``napari-unet-loop train | predict | export | info | demo``: the engine from the command
line."""

import argparse
import contextlib
import importlib.util
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .. import PLUGIN, __version__
from ..engine.errors import UNetError, os_error_message
from ..engine.objects import ObjectSettings

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
QT_BINDINGS = ("PyQt6", "PySide6", "PyQt5", "PySide2")
INSTALL_QT = 'install a Qt binding: pip install "napari[all]" (or pip install PyQt6)'


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that temporaries are cleaned up."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 success, 2 bad input or a fault)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 2
    with _sigterm_interrupts():
        try:
            return args.command(args)
        except UNetError as error:
            return _fail(str(error))
        except OSError as error:
            return _fail(os_error_message(error))
        except MemoryError:
            return _fail("out of memory: use a smaller image, model, tile or batch size")
        except Terminated:
            print(f"{PLUGIN}: terminated; no partial output was left", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print(f"{PLUGIN}: interrupted; no partial output was left", file=sys.stderr)
            return 130


def _fail(message: str) -> int:
    print(f"{PLUGIN}: error: {message}", file=sys.stderr)
    return 2


@contextlib.contextmanager
def _sigterm_interrupts():
    """Turn SIGTERM into :class:`Terminated` while a command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def _integer(low: int, high: int, multiple: int = 1):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high or value % multiple:
            every = f", a multiple of {multiple}" if multiple > 1 else ""
            raise argparse.ArgumentTypeError(
                f"must be a whole number from {low} to {high}{every}, not {text!r}"
            )
        return value

    return parse


def _number(low: float, high: float = math.inf, above: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or value > high or (above and value == low):
            bound = f"above {low:g}" if above else f"at least {low:g}"
            upper = "" if math.isinf(high) else f" and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be a number {bound}{upper}, not {text!r}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PLUGIN, description=__doc__)
    parser.add_argument("--version", action="version", version=f"{PLUGIN} {__version__}")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on annotated TIFF images")
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
        help="model to fine-tune (a model file or a bioimage.io package exported by us)",
    )
    train.add_argument(
        "--objects",
        action="store_true",
        help="the annotations paint each object with its own id (2, 3, ...; 1 = background): "
        "train one object class that learns to separate touching objects",
    )
    train.add_argument(
        "--steps",
        type=_integer(1, 10**9),
        help="training steps (default 1000, or none with --time-limit)",
    )
    train.add_argument(
        "--time-limit", type=_number(0, 10**7, above=True), help="stop after this many seconds"
    )
    train.add_argument(
        "--batch-size", type=_integer(1, 1024), help="patches per step (default: for the device)"
    )
    train.add_argument(
        "--patch-size",
        type=_integer(32, 4096, 16),
        help="side of the training patches (default: for the device and the image)",
    )
    train.add_argument("--depth", type=_integer(1, 6), help="U-Net depth of a new model")
    train.add_argument("--width", type=_integer(1, 256), help="base width of a new model")
    train.add_argument(
        "--w0", type=_number(0, 1000), default=10.0, help="border weight; 0 turns it off"
    )
    train.add_argument(
        "--sigma", type=_number(0, 1000, above=True), default=5.0, help="border weight width (px)"
    )
    _common(train, "replace an existing model file")
    train.set_defaults(command=_train)

    predict = commands.add_parser(
        "predict", help="predict a TIFF image, or a zarr / OME-Zarr volume, with a model"
    )
    predict.add_argument("model", type=Path)
    predict.add_argument("image", type=Path, help="TIFF image, or a zarr / OME-Zarr folder")
    predict.add_argument(
        "-o",
        "--output",
        type=_labels_output,
        required=True,
        help="labels TIFF to write (an OME-Zarr folder for a zarr input)",
    )
    predict.add_argument("--probabilities", type=_output, help="also write class probabilities")
    predict.add_argument("--instances", type=_output, help="also write object ids (instances)")
    predict.add_argument(
        "--instances-class", type=_integer(2, 64), default=2, help="class id of the objects"
    )
    objects = ObjectSettings()
    predict.add_argument(
        "--split",
        type=_number(0, 1),
        default=objects.split,
        help="how eagerly touching objects are split: 0 never, 1 at any dip "
        f"(default {objects.split:g})",
    )
    predict.add_argument(
        "--min-size",
        type=_integer(0, 2**31),
        default=objects.min_size,
        help="objects smaller than this many pixels are merged or dropped "
        f"(default {objects.min_size})",
    )
    predict.add_argument("--tile-size", type=_integer(16, 16384))
    predict.add_argument("--batch-size", type=_integer(1, 1024))
    _common(predict, "replace existing output files")
    predict.set_defaults(command=_predict)

    predict.add_argument(
        "--chunk",
        type=_integer(32, 16384),
        default=1024,
        help="zarr input: side of the output chunks predicted as one task (default 1024)",
    )
    cluster = predict.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=_integer(1, 1024),
        help="zarr input: predict on a local dask cluster of this many worker processes",
    )
    cluster.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="zarr input: predict on the dask.distributed cluster of this scheduler",
    )

    export = commands.add_parser(
        "export", help="write a model as a bioimage.io package (Fiji, ilastik, QuPath, zoo)"
    )
    export.add_argument("model", type=Path)
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
    export.set_defaults(command=_export)

    info = commands.add_parser("info", help="describe a model file or bioimage.io package")
    info.add_argument("model", type=Path)
    info.set_defaults(command=_info)

    demo = commands.add_parser("demo", help="open napari with the plugin and sample data")
    demo.set_defaults(command=_demo)
    return parser


def _common(parser: argparse.ArgumentParser, overwrite: str) -> None:
    parser.add_argument(
        "--channel-axis",
        type=_integer(-4, 3),
        help="axis of the image holding channels (default: a last axis of 3 or 4 is RGB)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--seed", type=_integer(0, 2**32 - 1), default=0)
    parser.add_argument("--overwrite", action="store_true", help=overwrite)


def _train(args) -> int:
    from ..engine.annotations import MAX_CLASSES, check_annotations
    from ..engine.device import describe
    from ..engine.model import UNetConfig
    from ..engine.train import Trainer, TrainSettings
    from ..storage.model_files import (
        check_model_name,
        load_model,
        model_bytes,
        not_a_model,
        weights_bytes,
    )
    from ..storage.output_files import reserve
    from ..storage.tiff import read_tiff

    check_model_name(args.output)
    image, channel_axis = _read_image(args.image, args.channel_axis)
    annotations = read_tiff(args.annotations)
    if args.objects:
        from ..engine.annotations import objects_to_classes

        annotations = objects_to_classes(annotations)
    start = load_model(args.start) if args.start else None
    steps = args.steps if args.steps is not None else (None if args.time_limit else 1000)
    settings = TrainSettings(
        steps=steps,
        time_limit=args.time_limit,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        depth=args.depth,
        width=args.width,
        w0=args.w0,
        sigma=args.sigma,
        device=args.device,
        seed=args.seed,
    )
    trainer = Trainer(
        image, annotations, channel_axis=channel_axis, settings=settings, segmenter=start
    )
    check_annotations(annotations, start.n_classes if start else None)
    config = UNetConfig(
        in_channels=trainer.stack.shape[-1], n_classes=MAX_CLASSES, **trainer.architecture
    )
    inputs = _inputs(image=args.image, annotations=args.annotations)
    if args.start:
        inputs[args.start] = "the --from model"
    with reserve(
        [args.output],
        overwrite=args.overwrite,
        inputs=inputs,
        replaceable=not_a_model,
        needed_bytes=weights_bytes(config) + 2**20,
    ) as output:
        print(f"training on {describe(trainer.device)}", flush=True)
        segmenter = _follow_training(trainer.run())
        data = model_bytes(segmenter)
        output.commit([lambda file: file.write(data)])
    print(f"wrote {args.output}")
    return 0


def _follow_training(run):
    """Print progress every 2 s; return the trained segmenter."""
    shown = 0.0
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            return done.value
        if event.elapsed - shown >= 2 or event.fraction >= 1:
            shown = event.elapsed
            dice = (
                "" if event.validation_dice is None else f"  val dice {event.validation_dice:.3f}"
            )
            total = f"/{event.steps}" if event.steps else ""
            print(
                f"step {event.step}{total}  loss {event.loss:.4f}{dice}  "
                f"{event.elapsed:.1f} s  {event.pixels_per_second / 1e6:.2f} Mpx/s",
                flush=True,
            )


def _predict(args) -> int:
    from ..storage.model_files import load_model

    if args.image.is_dir():
        return _predict_volume(args)
    if args.workers or args.scheduler:
        raise UNetError("--workers and --scheduler are for zarr / OME-Zarr inputs")
    segmenter = load_model(args.model)
    with _open_image(args.image, args.channel_axis) as (image, channel_axis):
        return _predict_image(args, segmenter, image, channel_axis)


def _predict_image(args, segmenter, image, channel_axis: int | None) -> int:
    from ..engine.predict import Predictor
    from ..storage.output_files import reserve

    predictor = Predictor(
        segmenter,
        image,
        channel_axis=channel_axis,
        probabilities=args.probabilities is not None,
        instances_of=args.instances_class if args.instances else None,
        objects=ObjectSettings(split=args.split, min_size=args.min_size),
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        device=args.device,
    )
    pixels = math.prod(predictor.stack.shape[:3])
    outputs = [(args.output, pixels)]
    if args.probabilities:
        outputs.append((args.probabilities, pixels * 4 * segmenter.n_classes))
    if args.instances:
        outputs.append((args.instances, pixels * 4))
    with reserve(
        [path for path, _ in outputs],
        overwrite=args.overwrite,
        inputs=_inputs(model=args.model, image=args.image),
        replaceable=_not_a_tiff,
        needed_bytes=sum(size for _, size in outputs),
    ) as reservation:
        started = time.perf_counter()
        run = predictor.run()
        while True:
            try:
                event = next(run)
            except StopIteration as done:
                result = done.value
                break
            print(f"slice {event.done}/{event.total}  {event.elapsed:.1f} s", flush=True)
        arrays = [result.labels, result.probabilities, result.instances]
        reservation.commit(_tiff_writer(a) for a in arrays if a is not None)
    for path, _ in outputs:
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _predict_volume(args) -> int:
    """A zarr / OME-Zarr input, predicted chunk by chunk into OME-Zarr labels."""
    from ..storage.volumes import VolumePredictor, cluster_client

    if args.probabilities or args.instances:
        raise UNetError(
            "zarr inputs give class labels only; --probabilities and --instances need a TIFF"
        )
    if args.tile_size or args.batch_size:
        raise UNetError(
            "zarr inputs are predicted in chunks: use --chunk, not --tile-size or --batch-size"
        )
    predictor = VolumePredictor(
        args.model,
        args.image,
        args.output,
        chunk=args.chunk,
        device=args.device,
        overwrite=args.overwrite,
        channel_axis=args.channel_axis,
    )
    started, client, written = time.perf_counter(), None, False
    try:
        if args.workers or args.scheduler:
            client = cluster_client(args.workers, args.scheduler)
        for done, total in predictor.run(client):
            if done == total or done % max(1, total // 20) == 0:
                print(f"chunk {done}/{total}  {time.perf_counter() - started:.1f} s", flush=True)
        written = True
    finally:
        _close_quietly(client, interrupted_ok=written)
    print(f"wrote {args.output}")
    return 0


def _close_quietly(client, interrupted_ok: bool) -> None:
    """Shut the dask client (and its local cluster) down; an interrupt while doing so once
    the output is written does not undo the success."""
    if client is None:
        return
    try:
        with contextlib.suppress(Exception):
            client.close()
        if client.cluster is not None:
            with contextlib.suppress(Exception):
                client.cluster.close()
    except KeyboardInterrupt:
        if not interrupted_ok:
            raise


def _export(args) -> int:
    from ..storage.bioimageio import export_model
    from ..storage.model_files import load_model

    segmenter = load_model(args.model)
    test_image = None
    if args.test_image:
        with _open_image(args.test_image, None) as (image, channel_axis):
            if image.ndim == 3 and channel_axis is None:
                image = image[0]
            test_image = np.asarray(image[:256, :256])  # only the pages it needs
    path = export_model(
        segmenter,
        args.output,
        name=args.name,
        description=args.description,
        authors=args.author,
        license=args.license,
        test_image=test_image,
        overwrite=args.overwrite,
        inputs=_inputs(model=args.model, test_image=args.test_image),
    )
    print(f"wrote {path}")
    return 0


def _inputs(**files: Path | None) -> dict[Path, str]:
    """The files a run reads, by what they are ("the test image"), for ``files.reserve``."""
    return {path: f"the {name.replace('_', ' ')}" for name, path in files.items() if path}


def _info(args) -> int:
    from ..storage.model_files import load_model

    segmenter = load_model(args.model)
    print(segmenter.describe())
    for i, entry in enumerate(segmenter.history, start=1):
        dice = entry.get("validation_dice")
        dice = f", validation dice {dice:.3f}" if isinstance(dice, int | float) else ""
        steps, seconds = entry.get("steps", "?"), entry.get("seconds", "?")
        print(f"round {i}: {steps} steps in {seconds} s on {entry.get('device', '?')}{dice}")
    return 0


def _demo(args) -> int:
    if sys.platform.startswith("linux") and not any(
        os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    ):
        raise UNetError("no display to open napari on (DISPLAY is not set)")
    if not any(importlib.util.find_spec(binding) for binding in QT_BINDINGS):
        raise UNetError(f"napari cannot open a window without a Qt binding; {INSTALL_QT}")
    from ..widgets._demo import open_demo

    open_demo()
    return 0


def _read_image(path: Path, channel_axis: int | None) -> tuple[np.ndarray, int | None]:
    """A TIFF image read whole (training needs it in memory), and its channel axis."""
    from ..engine.images import guess_channel_axis
    from ..storage.tiff import read_tiff

    image = read_tiff(path)
    if channel_axis is None:
        channel_axis = guess_channel_axis(image.shape)
    return image, channel_axis


@contextlib.contextmanager
def _open_image(path: Path, channel_axis: int | None):
    """A TIFF image to predict, read slice by slice where the file allows (memory-mapped or a
    page at a time, see tiff_input), and its channel axis; the file is open read-only until
    the ``with`` block ends."""
    from ..engine.images import guess_channel_axis
    from ..storage.tiff import open_tiff

    with open_tiff(path) as image:
        if channel_axis is None:
            channel_axis = guess_channel_axis(image.shape)
        yield image, channel_axis


def _tiff_writer(data: np.ndarray):
    import tifffile

    def write(file) -> None:
        tifffile.imwrite(file, np.asarray(data), compression="zlib")

    return write


def _not_a_tiff(path: Path) -> str | None:
    """Why ``path`` must not be replaced by a TIFF output (None for a TIFF image)."""
    with open(path, "rb") as file:
        return None if file.read(4) in TIFF_MAGIC else "exists and is not a TIFF image"

