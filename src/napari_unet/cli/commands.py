"""The commands: each reads its inputs, runs the engine and writes its outputs as one set."""

import contextlib
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..engine.errors import UNetError
from ..engine.object_size import AUTO
from ..engine.objects import ObjectSettings
from ..engine.progress import drain

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
IN_THE_OUTPUT = object()
"""``--instances`` given without a file: a zarr volume's objects go into its OME-Zarr output
(not a string, which argparse would read as a file name)."""
QT_BINDINGS = ("PyQt6", "PySide6", "PyQt5", "PySide2")
INSTALL_QT = 'install a Qt binding: pip install "napari[all]" (or pip install PyQt6)'


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that temporaries are cleaned up."""


def train(args) -> int:
    from ..engine.annotations import MAX_CLASSES, check_annotations
    from ..engine.device import describe
    from ..engine.model import UNetConfig
    from ..engine.train import Trainer, TrainSettings
    from ..storage.loading import load_model
    from ..storage.model_files import check_model_name, model_bytes, not_a_model, weights_bytes
    from ..storage.output_files import reserve
    from ..storage.tiff import read_tiff

    check_model_name(args.output)
    if args.start is None and (args.keep_start != TrainSettings().keep_start or not args.rescale):
        raise UNetError(
            "--keep-start and --no-rescale are for fine-tuning a model: add --from MODEL "
            "(or leave them out)"
        )
    image, channel_axis = _read_image(args.image, args.channel_axis)
    annotations = read_tiff(args.annotations)
    if args.objects:
        from ..engine.annotations import objects_to_classes

        annotations = objects_to_classes(annotations)
    start = load_model(args.start) if args.start else None
    steps = args.steps
    if steps is None and args.time_limit is None:
        steps = TrainSettings().steps
    settings = TrainSettings(
        steps=steps,
        time_limit=args.time_limit,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        depth=args.depth,
        width=args.width,
        learning_rate=args.learning_rate,
        w0=args.w0,
        sigma=args.sigma,
        device=args.device,
        seed=args.seed,
        keep_start=args.keep_start,
        rescale=args.rescale,
    )
    trainer = Trainer(
        image, annotations, channel_axis=channel_axis, settings=settings, segmenter=start
    )
    check_annotations(
        annotations, start.n_classes if start else None, alone=settings.keep_start > 0
    )
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
        last = segmenter.history[-1]
        _print_scale(last["measured_diameter"], last["scale"], segmenter)
        if last["merged_regions"]:
            from ..engine.start_answers import merged_note

            advice = (
                "give each its own id in the objects"
                if args.objects
                else "give each its own id (--objects) or leave a background line between them"
            )
            print(
                f"note: {merged_note(last['merged_regions'])} Where they are separate, {advice}.",
                flush=True,
            )
        data = model_bytes(segmenter)
        output.commit([lambda file: file.write(data)])
    print(f"wrote {args.output}")
    return 0


def _follow_training(run):
    """Print progress every 2 s; return the trained segmenter."""
    shown = 0.0

    def show(event) -> None:
        nonlocal shown
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

    return drain(run, show)


def predict(args) -> int:
    from ..storage.loading import load_model

    if args.z_spacing is not None and not args.volume:
        raise UNetError("--z-spacing describes a volume: add --volume (or leave it out)")
    if args.annotations is not None and args.suggest is None:
        raise UNetError("--annotations tells --suggest what is annotated: add --suggest N")
    if args.image.is_dir():
        if args.scale != AUTO:
            raise UNetError("zarr inputs are predicted at their own scale: leave out --scale")
        return _predict_volume(args)
    if args.workers or args.scheduler:
        raise UNetError("--workers and --scheduler are for zarr / OME-Zarr inputs")
    if args.instances is IN_THE_OUTPUT:
        raise UNetError("--instances needs a TIFF file to write for a TIFF input")
    segmenter = load_model(args.model)
    with _open_image(args.image, args.channel_axis) as (image, channel_axis):
        return _predict_image(args, segmenter, image, channel_axis)


def _predict_image(args, segmenter, image, channel_axis: int | None) -> int:
    from ..engine.predict import Predictor
    from ..storage.output_files import reserve
    from ..storage.tiff import TIFF_SUFFIXES

    predictor = Predictor(
        segmenter,
        image,
        channel_axis=channel_axis,
        probabilities=args.probabilities is not None,
        instances_of=args.instances_class if args.instances or args.suggest else None,
        uncertainty=args.uncertainty is not None or args.suggest is not None,
        objects=ObjectSettings(split=args.split, min_size=args.min_size),
        tile_size=args.tile_size,
        batch_size=args.batch_size,
        device=args.device,
        volume=args.volume,
        z_spacing=args.z_spacing or 1.0,
        scale=args.scale,
    )
    annotated = _annotated(args.annotations, predictor.stack.shape[:3])
    pixels = math.prod(predictor.stack.shape[:3])
    outputs = [(args.output, pixels, "labels")]
    if args.probabilities:
        outputs.append((args.probabilities, pixels * 4 * segmenter.n_classes, "probabilities"))
    if args.instances:
        outputs.append((args.instances, pixels * 4, "instances"))
    if args.uncertainty:
        outputs.append((args.uncertainty, pixels * 4, "uncertainty"))
    with reserve(
        [path for path, _, _ in outputs],
        overwrite=args.overwrite,
        inputs=_inputs(model=args.model, image=args.image, annotations=args.annotations),
        replaceable=_not_a_tiff,
        needed_bytes=sum(size for _, size, _ in outputs),
    ) as reservation:
        for path, _, _ in outputs:
            if Path(path).suffix.lower() not in TIFF_SUFFIXES:
                raise UNetError(
                    f"{path}: the outputs of a TIFF image are TIFF files; name it .tif or .tiff "
                    "(zarr outputs come from zarr / OME-Zarr inputs)"
                )
        started = time.perf_counter()
        result = drain(
            predictor.run(),
            lambda event: print(
                f"slice {event.done}/{event.total}  {event.elapsed:.1f} s", flush=True
            ),
        )
        reservation.commit(_tiff_writer(getattr(result, name)) for _, _, name in outputs)
    _print_scale(result.object_diameter, result.scale, segmenter)
    for path, _, _ in outputs:
        print(f"wrote {path}")
    if args.suggest:
        _print_regions(result, annotated, args.region_size, args.suggest)
    print(f"done in {time.perf_counter() - started:.1f} s")
    return 0


def _print_scale(diameter: float | None, factor: float, segmenter) -> None:
    """What the model measured, and the factor the image is used at."""
    if diameter is not None:
        used = "as it is" if factor == 1 else f"at x{factor:.2f}"
        print(
            f"objects measure {diameter:.0f} px across (the model's size: "
            f"{segmenter.object_diameter:.0f} px): the image is used {used}",
            flush=True,
        )


def _annotated(path: Path | None, shape: tuple[int, ...]) -> np.ndarray:
    """Where ``path``'s annotations (a TIFF of ``shape``, Z first) mark something."""
    if path is None:
        return np.zeros(shape, bool)
    annotations = np.asarray(_read_image(path, None)[0])
    if annotations.shape != shape and (shape[0] != 1 or annotations.shape != shape[1:]):
        raise UNetError(
            f"the annotations are {annotations.shape} but the image is {shape[-2:]} per slice "
            f"with {shape[0]} slice(s): give the annotations of this image"
        )
    return (annotations > 0).reshape(shape)


def _print_regions(result, annotated, size: int, count: int) -> None:
    """The ranking of where to annotate next (by the doubt of the objects found), one region
    per line."""
    from ..engine.regions import rank_regions

    unsure = np.asarray(result.uncertainty).reshape(annotated.shape)
    instances = np.asarray(result.instances).reshape(annotated.shape)
    regions = rank_regions(unsure, annotated, size=size, count=count, instances=instances)
    print("# slice y x size score (where annotating next helps most, best first)")
    for r in regions:
        print(f"{r.z} {r.y} {r.x} {r.size} {r.score:.4f}")
    if len(regions) < count:
        print(f"# only {len(regions)} region(s) hold doubtful, unannotated pixels")


def _predict_volume(args) -> int:
    """A zarr / OME-Zarr input, predicted chunk by chunk into OME-Zarr labels."""
    from ..storage.volumes import VolumePredictor, cluster_client

    if args.probabilities or args.uncertainty or args.suggest:
        raise UNetError(
            "zarr inputs give class labels only (and objects of a volume: --volume "
            "--instances); --probabilities, --uncertainty and --suggest need a TIFF"
        )
    if args.instances is not None and args.instances is not IN_THE_OUTPUT:
        raise UNetError(
            "the objects of a zarr volume go into the output OME-Zarr (labels/instances): "
            "give --instances without a file name"
        )
    if args.instances and not args.volume:
        raise UNetError(
            "objects of a zarr input are cut in 3D: add --volume (objects slice by slice "
            "need a TIFF)"
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
        instances_of=args.instances_class if args.instances else None,
        objects=ObjectSettings(split=args.split, min_size=args.min_size),
        z_spacing=args.z_spacing or 1.0,
    )
    started, client, written = time.perf_counter(), None, False
    try:
        if args.workers or args.scheduler:
            client = cluster_client(args.workers, args.scheduler)
        for done, total in predictor.run(client):
            if done == total or done % max(1, total // 20) == 0:
                print(f"task {done}/{total}  {time.perf_counter() - started:.1f} s", flush=True)
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


def export(args) -> int:
    from ..storage.bioimageio import export_model
    from ..storage.loading import load_model

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


def info(args) -> int:
    from ..models import card, resolve
    from ..storage.loading import load_model

    segmenter = load_model(args.model)
    path = resolve(args.model)
    if path != Path(args.model):  # a built-in model: its card first
        print(card(str(args.model)).rstrip() + "\n")
    print("\n".join(segmenter.summary() + segmenter.rounds()))
    return 0


def models(args) -> int:
    from ..models import BUILTIN

    for name, what in BUILTIN.items():
        print(f"{name}: {what}")
    print("Name one wherever a model file is accepted; `info NAME` prints its card.")
    return 0


def demo(args) -> int:
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
        tifffile.imwrite(file, np.asarray(data), compression="zlib", photometric="minisblack")

    return write


def _not_a_tiff(path: Path) -> str | None:
    """Why ``path`` must not be replaced by a TIFF output (None for a TIFF image)."""
    with open(path, "rb") as file:
        return None if file.read(4) in TIFF_MAGIC else "exists and is not a TIFF image"
