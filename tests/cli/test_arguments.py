"""The command line's arguments: each read and checked as its setting is, a bad value refused
in one line before any file is read."""

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from napari_unet.cli import commands, main
from napari_unet.cli.arguments import parser, reader
from napari_unet.engine.checks import Bound
from napari_unet.engine.errors import UNetError
from napari_unet.engine.objects import ObjectSettings
from napari_unet.engine.train import TrainSettings
from napari_unet.storage.volumes import DEFAULT_CHUNK

from helpers import one_error_line


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--depth", "0"),
        ("--depth", "7"),
        ("--width", "0"),
        ("--width", "-3"),
        ("--sigma", "nan"),
        ("--sigma", "0"),
        ("--learning-rate", "0"),
        ("--learning-rate", "2"),
        ("--w0", "-1"),
        ("--w0", "inf"),
        ("--seed", "-1"),
        ("--seed", "1e3"),
        ("--batch-size", "0"),
        ("--patch-size", "50"),
        ("--patch-size", "0"),
        ("--channel-axis", "9"),
        ("--channel-axis", "x"),
        ("--time-limit", "nan"),
        ("--time-limit", "inf"),
        ("--time-limit", "0"),
        ("--steps", "0"),
        ("--steps", "2.5"),
    ],
)
def test_bad_training_arguments_are_refused_before_reading_files(tmp_path, capsys, option, value):
    missing = str(tmp_path / "missing.tif")
    assert main(["train", missing, missing, "-o", str(tmp_path / "m"), option, value]) == 2
    err = one_error_line(capsys, f"argument {option}")
    assert "missing.tif" not in err and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--tile-size", "0"),
        ("--batch-size", "0"),
        ("--instances-class", "1"),
        ("--split", "nan"),
        ("--split", "2"),
        ("--min-size", "-1"),
        ("--z-spacing", "0"),
        ("--z-spacing", "-2"),
        ("--z-spacing", "nan"),
        ("--z-spacing", "inf"),
        ("--z-spacing", "x"),
        ("--scale", "abc"),
        ("--scale", "0"),
        ("--scale", "5"),
        ("--scale", "nan"),
        ("--scale", "Auto"),
    ],
)
def test_bad_prediction_arguments_are_refused(tmp_path, capsys, option, value):
    missing = str(tmp_path / "missing.tif")
    assert main(["predict", missing, missing, "-o", str(tmp_path / "l.tif"), option, value]) == 2
    one_error_line(capsys, f"argument {option}")


def test_a_bad_scale_is_one_line_naming_the_range(tmp_path, capsys):
    missing = str(tmp_path / "missing.tif")
    args = ["predict", missing, missing, "-o", str(tmp_path / "l.tif"), "--scale", "abc"]
    assert main(args) == 2
    one_error_line(
        capsys, "--scale: the scale factor must be 'auto' or a number from 0.25 to 4.0, not 'abc'"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_console_script_runs():
    result = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "train" in result.stdout and "predict" in result.stdout and "demo" in result.stdout


def test_a_reader_gives_the_checked_value_or_an_argparse_error():
    read = reader(Bound("tile size", int, 16, multiple=16))
    assert read("64") == 64 and read.__name__ == "tile size"
    with pytest.raises(argparse.ArgumentTypeError, match="tile size must be a multiple of 16"):
        read("40")


def test_each_command_reads_its_arguments_and_their_defaults():
    train = parser().parse_args(["train", "i.tif", "a.tif", "-o", "m.safetensors", "--steps", "7"])
    assert train.command is commands.train and train.output == Path("m.safetensors")
    assert train.steps == 7 and train.time_limit is None and train.start is None
    assert train.seed == TrainSettings().seed and train.device == "auto" and not train.overwrite
    predict = parser().parse_args(
        ["predict", "m.safetensors", "in.zarr", "-o", "out.ome.zarr/", "--split", "0.25"]
    )
    assert predict.command is commands.predict and predict.output == Path("out.ome.zarr")
    assert predict.split == 0.25 and predict.instances_class == 2
    assert predict.chunk == DEFAULT_CHUNK and predict.tile_size is None
    assert predict.scale == "auto" and train.rescale is True
    scaled = parser().parse_args(["predict", "m", "i.tif", "-o", "l.tif", "--scale", "0.5"])
    assert scaled.scale == 0.5
    fixed = ["train", "i.tif", "a.tif", "-o", "m", "--no-rescale"]
    assert parser().parse_args(fixed).rescale is False
    assert parser().parse_args(["info", "m.zip"]).command is commands.info


def test_a_local_cluster_and_a_scheduler_exclude_each_other(tmp_path, capsys):
    args = ["predict", "m.safetensors", "in.zarr", "-o", str(tmp_path / "out.ome.zarr")]
    assert main([*args, "--workers", "2", "--scheduler", "tcp://localhost:8786"]) == 2
    one_error_line(capsys, "not allowed with argument")
    assert list(tmp_path.iterdir()) == []


WALKED = ["0", "1", "2", "-1", "15", "16", "48", "1.5", "1e3", "nan", "inf", "abc", "2**40"]


def _options(command: str) -> dict[str, object]:
    """The options of ``command`` that read a setting, by flag."""
    top = parser()
    sub = next(a for a in top._actions if a.dest == "==SUPPRESS==" or a.choices)
    return {
        action.option_strings[-1]: action
        for action in sub.choices[command]._actions
        if action.option_strings and callable(action.type) and action.type is not str
    }


@pytest.mark.parametrize(
    ("settings", "command"), [(TrainSettings, "train"), (ObjectSettings, "predict")]
)
def test_the_command_line_and_the_api_accept_and_refuse_the_same_values(settings, command):
    """Every setting with a range that the command line exposes, walked over typical and odd
    values: the option accepts exactly what the dataclass accepts, with the same message."""
    import dataclasses
    import math

    options = _options(command)
    walked = 0
    for item in dataclasses.fields(settings):
        bound = item.metadata.get("bound")
        flag = "--" + item.name.replace("_", "-")
        if bound is None or flag not in options:
            continue
        walked += 1
        for text in [*WALKED, str(bound.low), str(bound.high), str((bound.high or 0) + 1)]:
            try:
                value = bound.kind(text)
            except (ValueError, OverflowError):
                value = text
            try:
                settings(**{item.name: value}).check()
                api = None
            except UNetError as error:
                api = str(error)
            try:
                parsed = options[flag].type(text)
                cli = None
            except argparse.ArgumentTypeError as error:
                cli, parsed = str(error), None
            assert cli == api, (flag, text)
            if api is None and not (isinstance(value, float) and math.isnan(value)):
                assert parsed == value, (flag, text)
    assert walked >= (9 if command == "train" else 2)


def test_the_entry_point_imports_the_heavy_modules_inside_main():
    """So that Ctrl-C during the seconds of importing torch ends in one line, not a traceback."""
    import subprocess
    import sys

    code = "import sys, napari_unet.cli; print('torch' in sys.modules)"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr
