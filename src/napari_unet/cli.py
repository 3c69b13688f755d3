"""``napari-unet train | predict | info | demo``: the engine from the command line."""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .errors import UNetError


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 success, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        return args.command(args)
    except UNetError as error:
        print(f"napari-unet: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-unet: interrupted, nothing written", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="napari-unet", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on annotated TIFF images")
    train.add_argument("image", type=Path, help="TIFF image, 2D (YX) or a stack (ZYX)")
    train.add_argument(
        "annotations",
        type=Path,
        help="TIFF of the image's spatial shape: 0 = none, 1 = background, 2.. = classes",
    )
    train.add_argument("-o", "--output", type=Path, required=True, help="model file to write")
    train.add_argument("--from", dest="start", type=Path, help="model to fine-tune")
    train.add_argument(
        "--steps", type=int, help="training steps (default 1000, or none with --time-limit)"
    )
    train.add_argument("--time-limit", type=float, help="stop after this many seconds")
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--patch-size", type=int, default=128)
    train.add_argument("--depth", type=int, help="U-Net depth of a new model")
    train.add_argument("--width", type=int, help="base width of a new model")
    train.add_argument("--w0", type=float, default=10.0, help="border weight; 0 turns it off")
    train.add_argument("--sigma", type=float, default=5.0, help="border weight width (px)")
    _common(train)
    train.set_defaults(command=_train)

    predict = commands.add_parser("predict", help="predict a TIFF image with a model")
    predict.add_argument("model", type=Path)
    predict.add_argument("image", type=Path)
    predict.add_argument("-o", "--output", type=Path, required=True, help="labels TIFF to write")
    predict.add_argument("--probabilities", type=Path, help="also write class probabilities")
    predict.add_argument("--instances", type=Path, help="also write instance labels")
    predict.add_argument("--instances-class", type=int, default=2, help="class id of objects")
    predict.add_argument("--tile-size", type=int)
    predict.add_argument("--batch-size", type=int)
    _common(predict)
    predict.set_defaults(command=_predict)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model", type=Path)
    info.set_defaults(command=_info)

    demo = commands.add_parser("demo", help="open napari with the plugin and sample data")
    demo.set_defaults(command=_demo)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--channel-axis",
        type=int,
        help="axis of the image holding channels (default: a last axis of 3 or 4 is RGB)",
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--seed", type=int, default=0)


def _train(args) -> int:
    from .device import describe
    from .io import load_model, read_config, save_model
    from .train import Trainer, TrainSettings

    _check_writable_model(args.output, read_config)
    image, channel_axis = _read_image(args.image, args.channel_axis)
    annotations = _read_tiff(args.annotations)
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
    print(f"training on {describe(trainer.device)}", flush=True)
    run = trainer.run()
    shown = 0.0
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            segmenter = done.value
            break
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
    save_model(segmenter, args.output)
    print(f"wrote {args.output}")
    return 0


def _predict(args) -> int:
    from .io import load_model
    from .predict import Predictor

    segmenter = load_model(args.model)
    image, channel_axis = _read_image(args.image, args.channel_axis)
    predictor = Predictor(
        segmenter,
        image,
        channel_axis=channel_axis,
        probabilities=args.probabilities is not None,
        instances_of=args.instances_class if args.instances else None,
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        device=args.device,
    )
    run = predictor.run()
    started = time.perf_counter()
    while True:
        try:
            event = next(run)
        except StopIteration as done:
            result = done.value
            break
        print(f"slice {event.done}/{event.total}  {event.elapsed:.1f} s", flush=True)
    outputs = [(args.output, result.labels)]
    if args.probabilities:
        outputs.append((args.probabilities, result.probabilities))
    if args.instances:
        outputs.append((args.instances, result.instances))
    for path, data in outputs:
        _write_tiff(path, data)
        print(f"wrote {path}")
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _info(args) -> int:
    from .io import load_model

    segmenter = load_model(args.model)
    print(segmenter.describe())
    for i, entry in enumerate(segmenter.history, start=1):
        dice = entry.get("validation_dice")
        dice = "" if dice is None else f", validation dice {dice:.3f}"
        print(
            f"round {i}: {entry['steps']} steps in {entry['seconds']} s on {entry['device']}{dice}"
        )
    return 0


def _demo(args) -> int:
    import napari

    viewer = napari.Viewer(title="napari-unet demo")
    viewer.open_sample("napari-unet", "nuclei_annotated")
    viewer.window.add_plugin_dock_widget("napari-unet", "U-Net")
    napari.run()
    return 0


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    if not path.is_file():
        raise UNetError(f"{path} does not exist or is not a file")
    try:
        return tifffile.imread(path)
    except Exception as error:
        raise UNetError(f"cannot read {path} as a TIFF image: {error}") from None


def _read_image(path: Path, channel_axis: int | None) -> tuple[np.ndarray, int | None]:
    from .images import guess_channel_axis

    image = _read_tiff(path)
    if channel_axis is None:
        channel_axis = guess_channel_axis(image.shape)
    return image, channel_axis


def _write_tiff(path: Path, data: np.ndarray) -> None:
    """Write ``data`` to ``path`` through a temporary file, so no half-written TIFF remains."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        tifffile.imwrite(temporary, np.asarray(data), compression="zlib")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _check_writable_model(path: Path, read_config) -> None:
    """Refuse to overwrite a file that is not a napari-unet model."""
    if path.is_dir():
        raise UNetError(f"{path} is a folder; give a model file name such as model.safetensors")
    if path.exists():
        try:
            read_config(path)
        except UNetError:
            raise UNetError(
                f"{path} exists and is not a napari-unet model; not overwriting it"
            ) from None


if __name__ == "__main__":
    sys.exit(main())
