"""The command line's commands: train, predict, info, export and demo, their outputs written
whole or not at all, and every failure one line and an exit status."""

import errno
import importlib.util
import os
import re
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import tifffile
from scipy import ndimage

from napari_unet.cli import main
from napari_unet.engine.train import FINE_TUNING_RATE
from napari_unet.samples import nuclei_instances
from napari_unet.storage.loading import load_model
from napari_unet.storage.model_files import save_model
from napari_unet.storage.output_files import TEMPORARY_SUFFIX

from helpers import one_error_line

TINY_ARGS = ["--steps", "3", "--width", "4", "--depth", "2", "--patch-size", "64"]
TINY_ARGS += ["--batch-size", "2"]


@pytest.fixture
def files(tmp_path, image, annotations):
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "annotations.tif", annotations)
    return tmp_path


@pytest.fixture
def model(files, trained):
    return save_model(trained, files / "model.safetensors")


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_train_then_predict_writes_models_and_tiffs(files, capsys):
    model = files / "model.safetensors"
    args = ["train", str(files / "image.tif"), str(files / "annotations.tif"), "-o", str(model)]
    assert main([*args, *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert "training on " in out and "step 3/3" in out and f"wrote {model}" in out
    assert load_model(model).history[-1]["steps"] == 3

    code = main(
        [
            "predict",
            str(model),
            str(files / "image.tif"),
            "-o",
            str(files / "labels.tif"),
            "--probabilities",
            str(files / "prob.tif"),
            "--instances",
            str(files / "inst.tif"),
        ]
    )
    assert code == 0
    labels = tifffile.imread(files / "labels.tif")
    assert labels.shape == (512, 512) and set(np.unique(labels)) <= {1, 2}
    assert tifffile.imread(files / "prob.tif").shape == (2, 512, 512)
    assert tifffile.imread(files / "inst.tif").dtype == np.uint32
    mode = 0o666 & ~_umask()
    assert all(
        stat.S_IMODE((files / n).stat().st_mode) == mode for n in ("labels.tif", "inst.tif")
    )
    assert not [n for n in names(files) if n.startswith(".")]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_fine_tuning_from_a_model_and_info(files, model, trained, capsys):
    tuned = files / "tuned.safetensors"
    args = ["train", str(files / "image.tif"), str(files / "annotations.tif"), "-o", str(tuned)]
    assert main([*args, "--from", str(model), "--steps", "2"]) == 0
    assert len(load_model(tuned).history) == len(trained.history) + 1
    assert main(["info", str(tuned)]) == 0
    out = capsys.readouterr().out
    assert "round 2: 2 steps" in out and "Classes: background, class 2" in out


def test_corrections_of_one_class_fine_tune_unless_the_start_is_not_kept(files, model, capsys):
    corrections = np.zeros((512, 512), np.uint8)
    corrections[200:240, 200:240] = 1
    tifffile.imwrite(files / "corrections.tif", corrections)
    args = ["train", str(files / "image.tif"), str(files / "corrections.tif"), "--steps", "2"]
    args += ["--from", str(model)]
    assert main([*args, "-o", str(files / "tuned.safetensors")]) == 0
    tuned = load_model(files / "tuned.safetensors").history[-1]
    assert tuned["settings"]["keep_start"] == 0.5 and tuned["learning_rate"] == FINE_TUNING_RATE
    slow = ["-o", str(files / "slow.safetensors"), "--learning-rate", "1e-4"]
    assert main([*args, *slow]) == 0
    assert load_model(files / "slow.safetensors").history[-1]["learning_rate"] == 1e-4
    capsys.readouterr()
    assert main([*args, "-o", str(files / "alone.safetensors"), "--keep-start", "0"]) == 2
    one_error_line(capsys, "only id 1 is annotated")
    assert not (files / "alone.safetensors").exists()


def test_time_limit_alone_is_enough(files):
    model = files / "m.safetensors"
    args = ["train", str(files / "image.tif"), str(files / "annotations.tif"), "-o", str(model)]
    assert main([*args, "--time-limit", "1", *TINY_ARGS[2:]]) == 0
    assert load_model(model).history[-1]["seconds"] < 15


def test_objects_painted_with_their_own_ids_train_one_class(files, capsys):
    instances = nuclei_instances()
    painted = np.where(instances > 0, instances + 1, 1).astype(np.uint16)
    painted[128:] = 0
    tifffile.imwrite(files / "objects.tif", painted)
    model = files / "m.safetensors"
    args = ["train", str(files / "image.tif"), str(files / "objects.tif"), "-o", str(model)]
    assert main([*args, *TINY_ARGS]) == 2
    one_error_line(capsys, "instance labels")
    assert main([*args, *TINY_ARGS, "--objects"]) == 0
    assert load_model(model).class_names == ["background", "class 2"]


def test_instances_follow_split_and_min_size(files, model):
    counts = {}
    for split, min_size in [("0", "0"), ("1", "0"), ("0", "100000")]:
        out = files / f"inst-{split}-{min_size}.tif"
        args = ["predict", str(model), str(files / "image.tif"), "-o", str(files / "l.tif")]
        args += ["--instances", str(out), "--split", split, "--min-size", min_size]
        assert main([*args, "--overwrite"]) == 0
        counts[split, min_size] = len(np.unique(tifffile.imread(out))) - 1
    assert counts["1", "0"] > counts["0", "0"] > 0
    assert counts["0", "100000"] == 0


def bad_input_cases(files, model):
    image, annotations = str(files / "image.tif"), str(files / "annotations.tif")
    out = str(files / "out.safetensors")
    labels = str(files / "labels.tif")
    (files / "empty.tif").write_bytes(b"")
    (files / "notes.txt").write_text("not a model")
    (files / "folder").mkdir()
    tifffile.imwrite(files / "wrong.tif", np.zeros((100, 100), np.uint8))
    train = ["train", image, annotations]
    predict = ["predict", str(model), image]
    return [
        (["train", str(files / "missing.tif"), annotations, "-o", out], "does not exist"),
        (["train", str(files / "empty.tif"), annotations, "-o", out], "cannot read"),
        (["train", image, str(files / "wrong.tif"), "-o", out], "must match"),
        ([*train, "-o", str(files / "notes.txt")], "already exists; use --overwrite"),
        ([*train, "-o", str(files / "notes.txt"), "--overwrite"], "not overwriting"),
        ([*train, "-o", str(model)], "already exists; use --overwrite"),
        ([*train, "-o", str(model), "--from", str(model), "--overwrite"], "--from model"),
        ([*train, "-o", image, "--overwrite"], "is the image of this run"),
        ([*train, "-o", str(files / "folder")], "is a folder"),
        ([*train, "-o", out, "--keep-start", "0.2"], "for fine-tuning a model: add --from"),
        ([*train, "-o", out, "--no-rescale"], "for fine-tuning a model: add --from"),
        ([*train, "-o", str(files / "nowhere" / "m.safetensors")], "does not exist"),
        ([*train, "-o", out, "--from", str(files / "notes.txt")], "not a napari-unet-loop"),
        (["predict", str(files / "notes.txt"), image, "-o", labels], "not a napari-unet-loop"),
        ([*predict, "-o", str(files / "notes.txt")], "already exists"),
        ([*predict, "-o", str(files / "notes.txt"), "--overwrite"], "not a TIFF image"),
        ([*predict, "-o", image, "--overwrite"], "is the image of this run"),
        ([*predict, "-o", str(model), "--overwrite"], "is the model of this run"),
        ([*predict, "-o", labels, "--instances", labels], "two outputs"),
        ([*predict, "-o", str(files / "labels.zarr")], "TIFF files; name it .tif or .tiff"),
        ([*predict, "-o", labels, "--instances", str(files / "o.png")], "name it .tif"),
        ([*predict, "-o", labels, "--channel-axis", "2"], "channel axis 2 does not exist"),
        ([*predict, "-o", labels, "--tile-size", "40"], "tile"),
    ]


def test_bad_input_exits_2_with_one_line_and_writes_nothing(files, model, capsys):
    for args, message in bad_input_cases(files, model):
        before = {p.name: p.stat().st_mtime_ns for p in files.iterdir()}
        assert main(args) == 2, args
        one_error_line(capsys, message)
        assert {p.name: p.stat().st_mtime_ns for p in files.iterdir()} == before
    assert (files / "notes.txt").read_text() == "not a model"


def test_existing_outputs_are_replaced_only_with_overwrite_and_keep_their_mode(files, model):
    args = ["predict", str(model), str(files / "image.tif"), "-o", str(files / "labels.tif")]
    args += ["--probabilities", str(files / "prob.tif")]
    tifffile.imwrite(files / "prob.tif", np.zeros((4, 4), np.float32))
    (files / "prob.tif").chmod(0o640)
    before = (files / "prob.tif").read_bytes()
    assert main(args) == 2
    assert not (files / "labels.tif").exists() and (files / "prob.tif").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0
    assert tifffile.imread(files / "prob.tif").shape == (2, 512, 512)
    assert stat.S_IMODE((files / "prob.tif").stat().st_mode) == 0o640


def test_an_interrupt_while_writing_leaves_the_old_set(files, model, monkeypatch, capsys):
    args = ["predict", str(model), str(files / "image.tif"), "-o", str(files / "labels.tif")]
    args += ["--probabilities", str(files / "prob.tif"), "--overwrite"]
    for name in ("labels.tif", "prob.tif"):
        tifffile.imwrite(files / name, np.zeros((4, 4), np.uint8))
    before = names(files)
    real_write = tifffile.imwrite
    calls = []

    def interrupted(file, data, **kwargs):
        calls.append(file)
        real_write(file, data, **kwargs)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupted)
    assert main(args) == 130
    assert "interrupted" in capsys.readouterr().err
    assert names(files) == before
    assert all(tifffile.imread(files / n).shape == (4, 4) for n in ("labels.tif", "prob.tif"))


def test_a_full_disk_is_found_before_training(files, monkeypatch, capsys):
    class Usage:
        free = 1000

    monkeypatch.setattr("napari_unet.storage.output_files.shutil.disk_usage", lambda p: Usage)
    args = ["train", str(files / "image.tif"), str(files / "annotations.tif")]
    assert main([*args, "-o", str(files / "m.safetensors"), *TINY_ARGS]) == 2
    one_error_line(capsys, "only 0 MiB are free")
    assert "training on" not in capsys.readouterr().out
    assert names(files) == ["annotations.tif", "image.tif"]


def test_a_read_only_folder_is_found_before_predicting(files, model, monkeypatch, capsys):
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(TEMPORARY_SUFFIX):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    args = ["predict", str(model), str(files / "image.tif"), "-o", str(files / "l.tif")]
    assert main(args) == 2
    one_error_line(capsys, "is read-only")
    assert "slice" not in capsys.readouterr().out


def test_os_errors_are_one_line(files, model, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("napari_unet.storage.output_files.os.fsync", full)
    args = ["predict", str(model), str(files / "image.tif"), "-o", str(files / "l.tif")]
    assert main(args) == 2
    one_error_line(capsys, "disk is full")
    assert not (files / "l.tif").exists() and not [n for n in names(files) if n[0] == "."]


def test_sigterm_during_training_cleans_up_and_exits_143(files):
    model = files / "m.safetensors"
    command = [sys.executable, "-m", "napari_unet.cli", "train", str(files / "image.tif")]
    command += [str(files / "annotations.tif"), "-o", str(model), "--time-limit", "60"]
    process = subprocess.Popen(
        [*command, "--width", "4", "--depth", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("training on"), line + process.stderr.read()
        assert any(n.endswith(TEMPORARY_SUFFIX) for n in names(files))
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 143
    assert err.strip() == "napari-unet-loop: terminated; no partial output was left"
    assert names(files) == ["annotations.tif", "image.tif"]


def test_demo_without_a_qt_binding_says_what_to_install(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec

    def no_qt(name, *args, **kwargs):
        return None if name in ("PyQt6", "PySide6", "PyQt5", "PySide2") else real_find_spec(name)

    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setattr(importlib.util, "find_spec", no_qt)
    assert main(["demo"]) == 2
    one_error_line(capsys, 'pip install "napari[all]"')


def test_demo_without_a_display_says_so(monkeypatch, capsys):
    monkeypatch.setattr(sys, "platform", "linux")
    for variable in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(variable, raising=False)
    assert main(["demo"]) == 2
    one_error_line(capsys, "no display")


def test_outputs_that_would_lose_work_or_never_load_are_refused(files, model, capsys):
    image, annotations = str(files / "image.tif"), str(files / "annotations.tif")
    before = names(files)
    train = ["train", image, annotations, *TINY_ARGS]
    assert main([*train, "-o", str(files / "model.zip")]) == 2
    one_error_line(capsys, "would be read back as a bioimage.io package")
    assert main([*train, "-o", str(files / "newdir") + "/"]) == 2
    one_error_line(capsys, "names a folder; give a file name")
    assert main([*train, "--from", str(model), "--depth", "3", "-o", str(files / "m.st")]) == 2
    one_error_line(capsys, "fine-tuning keeps a model's depth")
    assert names(files) == before

    pytest.importorskip("yaml")
    package = files / "package.zip"
    assert main(["export", str(model), "-o", str(package), "--author", "Jane"]) == 0
    exported = package.read_bytes()
    assert main(["export", str(package), "-o", str(package), "--overwrite"]) == 2
    one_error_line(capsys, "is the model of this run")
    assert package.read_bytes() == exported
    assert "Jane" in zipfile.ZipFile(package).read("rdf.yaml").decode()
    assert main(["predict", str(package), image, "-o", str(files / "from-package.tif")]) == 0
    assert main(["export", str(model), "-o", str(files / "image.tif"), "--overwrite"]) == 2
    one_error_line(capsys, "a bioimage.io package is a .zip file")


@pytest.fixture(scope="module")
def model_file(trained, tmp_path_factory):
    return save_model(trained, tmp_path_factory.mktemp("cli") / "model.safetensors")


def test_export_info_and_fine_tune_from_a_package(
    model_file, image, annotations, tmp_path, capsys
):
    pytest.importorskip("yaml")
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "annotations.tif", annotations)
    package = tmp_path / "nuclei.zip"
    args = ["export", str(model_file), "-o", str(package), "--author", "A. Tester"]
    assert main([*args, "--test-image", str(tmp_path / "image.tif")]) == 0
    assert package.stat().st_size > 0
    assert main(args) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["info", str(package)]) == 0
    assert "Classes: background, class 2" in capsys.readouterr().out
    tuned = tmp_path / "tuned.safetensors"
    train = ["train", str(tmp_path / "image.tif"), str(tmp_path / "annotations.tif")]
    assert main([*train, "-o", str(tuned), "--from", str(package), "--steps", "2"]) == 0
    assert tuned.exists()


def test_a_zarr_volume_is_predicted_into_ome_zarr(model_file, image, tmp_path, capsys):
    zarr = pytest.importorskip("zarr", minversion="3")
    source = tmp_path / "in.zarr"
    zarr.open_array(str(source), mode="w", shape=(2, 128, 160), dtype=image.dtype)[...] = np.stack(
        [image[:128, :160], image[128:256, 160:320]]
    )
    target = tmp_path / "out.ome.zarr"
    assert main(["predict", str(model_file), str(source), "-o", str(target), "--chunk", "64"]) == 0
    labels = zarr.open_group(str(target), mode="r")["0"][...]
    assert labels.shape == (2, 128, 160) and set(np.unique(labels)) <= {1, 2}
    assert main(["predict", str(model_file), str(source), "-o", str(target)]) == 2
    assert "exists" in capsys.readouterr().err
    extra = ["--probabilities", str(tmp_path / "p.tif")]
    assert main(["predict", str(model_file), str(source), "-o", str(tmp_path / "o"), *extra]) == 2
    assert "labels only" in capsys.readouterr().err


def test_cluster_options_need_a_zarr_input(model_file, image, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "image.tif", image)
    out = str(tmp_path / "labels.tif")
    args = ["predict", str(model_file), str(tmp_path / "image.tif"), "-o", out, "--workers", "2"]
    assert main(args) == 2
    assert "zarr" in capsys.readouterr().err
    assert main([*args[:-2], "--workers", "0"]) == 2


def test_the_test_image_is_the_corner_of_a_stacks_first_slice(model_file, image, tmp_path):
    pytest.importorskip("yaml")
    import io
    import zipfile

    stack = np.stack([image, image[::-1], image[:, ::-1], image.T, image[::-1, ::-1]])
    tifffile.imwrite(tmp_path / "stack.tif", stack, compression="zlib", photometric="minisblack")
    package = tmp_path / "p.zip"
    args = ["export", str(model_file), "-o", str(package), "--test-image"]
    assert main([*args, str(tmp_path / "stack.tif")]) == 0
    test_input = np.load(io.BytesIO(zipfile.ZipFile(package).read("test_input.npy")))
    np.testing.assert_array_equal(test_input[0, 0], image[:256, :256].astype(np.float32))


# rescaling to the model's object size (engine/object_size.py)

USED_AT = r"objects measure (\d+) px across \(the model's size: \d+ px\): the image is used "


@pytest.fixture
def zoomed(tmp_path):
    """The nuclei sample zoomed x2 (nuclei twice as wide), as a TIFF."""
    from scipy import ndimage

    from napari_unet.samples import nuclei

    tifffile.imwrite(tmp_path / "zoomed.tif", ndimage.zoom(nuclei(), 2))
    return tmp_path / "zoomed.tif"


def test_the_builtin_model_predicts_a_zoomed_image_at_its_object_size(zoomed, capsys):
    labels = zoomed.parent / "labels.tif"
    assert main(["predict", "nuclei", str(zoomed), "-o", str(labels), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    used = re.search(USED_AT + r"at x(\d\.\d\d)", out)
    assert used, out
    assert 35 < int(used.group(1)) < 65 and 0.4 <= float(used.group(2)) <= 0.65
    assert len(re.findall("objects measure", out)) == 1 and f"wrote {labels}" in out
    written = tifffile.imread(labels)
    assert written.shape == (1024, 1024) and set(np.unique(written)) == {1, 2}
    assert (written == 2).mean() > 0.1


def test_a_given_scale_is_used_without_measuring(image, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "image.tif", image)
    args = ["predict", "nuclei", str(tmp_path / "image.tif"), "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "auto.tif")]) == 0
    out = capsys.readouterr().out
    assert re.search(USED_AT + "as it is", out), out  # measured, near the model's size
    assert main([*args, "-o", str(tmp_path / "one.tif"), "--scale", "1"]) == 0
    out = capsys.readouterr().out
    assert "objects measure" not in out and "wrote" in out
    one = tifffile.imread(tmp_path / "one.tif")
    assert np.array_equal(one, tifffile.imread(tmp_path / "auto.tif"))
    assert main([*args, "-o", str(tmp_path / "half.tif"), "--scale", "0.5"]) == 0
    assert "objects measure" not in capsys.readouterr().out
    half = tifffile.imread(tmp_path / "half.tif")
    assert half.shape == image.shape and not np.array_equal(half, one)


def test_a_model_without_an_object_size_prints_no_measure(files, model, capsys):
    args = ["predict", str(model), str(files / "image.tif"), "-o", str(files / "labels.tif")]
    assert main(args) == 0
    assert "objects measure" not in capsys.readouterr().out


def test_a_zarr_input_refuses_a_scale(model_file, image, tmp_path, capsys):
    zarr = pytest.importorskip("zarr", minversion="3")
    source = tmp_path / "in.zarr"
    zarr.open_array(str(source), mode="w", shape=(1, 64, 64), dtype=image.dtype)[...] = image[
        None, :64, :64
    ]
    target = tmp_path / "out.ome.zarr"
    args = ["predict", str(model_file), str(source), "-o", str(target)]
    assert main([*args, "--scale", "0.5"]) == 2
    one_error_line(capsys, "zarr inputs are predicted at their own scale: leave out --scale")
    assert not target.exists()


def test_fine_tuning_the_builtin_model_says_at_what_scale(zoomed, capsys):
    from scipy import ndimage

    from napari_unet.samples import nuclei_annotations

    folder = zoomed.parent
    corner = (slice(0, 512), slice(0, 512))  # a quarter of the zoomed image: faster
    tifffile.imwrite(folder / "corner.tif", tifffile.imread(zoomed)[corner])
    annotations = ndimage.zoom(nuclei_annotations(rows=128), 2, order=0)[corner]
    tifffile.imwrite(folder / "annotations.tif", annotations)
    args = ["train", str(folder / "corner.tif"), str(folder / "annotations.tif"), "--from"]
    args += ["nuclei"]
    args += ["--steps", "1", "--patch-size", "64", "--batch-size", "2", "--device", "cpu"]
    args += ["--keep-start", "0"]
    assert main([*args, "-o", str(folder / "tuned.safetensors")]) == 0
    out = capsys.readouterr().out
    used = re.search(USED_AT + r"at x(\d\.\d\d)", out)
    assert used, out
    tuned = load_model(folder / "tuned.safetensors")
    assert tuned.history[-1]["scale"] == pytest.approx(float(used.group(2)), abs=0.005)
    assert 0.4 <= tuned.history[-1]["scale"] <= 0.65
    assert tuned.object_diameter == load_model("nuclei").object_diameter
    assert main([*args, "-o", str(folder / "as_is.safetensors"), "--no-rescale"]) == 0
    assert "objects measure" not in capsys.readouterr().out
    assert load_model(folder / "as_is.safetensors").history[-1]["scale"] == 1


def test_fine_tuning_on_nuclei_painted_as_one_blob_prints_a_note(tmp_path, capsys):
    from napari_unet.engine.predict import predict
    from napari_unet.samples import nuclei

    image = nuclei()
    objects = predict(load_model("nuclei"), image, instances_of=2).instances
    tifffile.imwrite(tmp_path / "image.tif", image)
    args = ["train", str(tmp_path / "image.tif"), str(tmp_path / "annotations.tif"), "--from"]
    args += ["nuclei", "--steps", "1", "--patch-size", "64", "--batch-size", "2"]
    args += ["--device", "cpu", "--overwrite", "-o", str(tmp_path / "tuned.safetensors")]
    tifffile.imwrite(tmp_path / "annotations.tif", np.where(objects > 0, 2, 1).astype(np.uint8))
    assert main(args) == 0
    note = re.search(
        r"note: (\d+) painted regions each cover .* \(--objects\)", capsys.readouterr().out
    )
    assert note and int(note.group(1)) == load_model(args[-1]).history[-1]["merged_regions"] > 1
    painted_apart = np.where(objects > 0, objects + 1, 1).astype(np.uint16)  # 1: background
    tifffile.imwrite(tmp_path / "annotations.tif", painted_apart)
    assert main([*args, "--objects"]) == 0  # each nucleus its own id: nothing merged
    assert "note:" not in capsys.readouterr().out
    blobs = ndimage.label(objects > 0)[0]
    tifffile.imwrite(tmp_path / "annotations.tif", np.where(blobs > 0, blobs + 1, 1))
    assert main([*args, "--objects"]) == 0  # touching nuclei given one id: merged again
    said = capsys.readouterr().out
    assert "note:" in said and "own id in the objects." in said and "(--objects)" not in said
