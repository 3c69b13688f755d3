"""Chunk-by-chunk prediction of zarr / OME-Zarr volumes, in one process and on a local cluster."""

import os
import signal

import numpy as np
import pytest

from napari_unet.engine.errors import UNetError
from napari_unet.engine.predict import predict
from napari_unet.storage.model_files import save_model

zarr = pytest.importorskip("zarr", minversion="3")
from napari_unet.storage.volumes import VolumePredictor, cluster_client, metadata

CHUNK = 96


def run(predictor, client=None, on_progress=None):
    generator = predictor.run(client)
    while True:
        try:
            done = next(generator)
        except StopIteration as finished:
            return finished.value
        if on_progress:
            on_progress(done)


@pytest.fixture(scope="module")
def volume(image, tmp_path_factory):
    """A 2-slice OME-Zarr (axes zyx) of the nuclei image, 300x320 pixels per slice."""
    folder = tmp_path_factory.mktemp("volume")
    stack = np.stack([image[:300, :320], image[200:500, 150:470]])
    root = zarr.open_group(str(folder / "in.ome.zarr"), mode="w", zarr_format=2)
    root.create_array("0", data=stack, chunks=(1, 128, 128))
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    return folder / "in.ome.zarr", stack


@pytest.fixture(scope="module")
def model_path(trained, tmp_path_factory):
    return save_model(trained, tmp_path_factory.mktemp("model") / "m.safetensors")


@pytest.fixture(scope="module")
def single(volume, model_path, tmp_path_factory):
    target = tmp_path_factory.mktemp("single") / "out.ome.zarr"
    run(VolumePredictor(model_path, volume[0], target, chunk=CHUNK, device="cpu"))
    return zarr.open_group(str(target), mode="r")["0"][...]


def test_chunked_equals_whole_slice_prediction(single, volume, trained):
    whole = predict(trained, volume[1], device="cpu").labels
    np.testing.assert_array_equal(single, whole)
    assert set(np.unique(single)) == {1, 2}


def test_each_volume_keeps_its_own_normalisation(volume, model_path, trained, tmp_path):
    """One model, two volumes of other intensities, one process: the model loaded for the
    first must not carry its normalisation to the second."""
    dim = tmp_path / "dim.ome.zarr"
    root = zarr.open_group(str(dim), mode="w", zarr_format=2)
    root.create_array("0", data=(volume[1] // 4).astype(volume[1].dtype), chunks=(1, 128, 128))
    axes = [{"name": n, "type": "space"} for n in "zyx"]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]
    run(VolumePredictor(model_path, volume[0], tmp_path / "a.ome.zarr", chunk=CHUNK))
    run(VolumePredictor(model_path, dim, tmp_path / "b.ome.zarr", chunk=CHUNK, device="cpu"))
    second = zarr.open_group(str(tmp_path / "b.ome.zarr"), mode="r")["0"][...]
    whole = predict(trained, (volume[1] // 4).astype(volume[1].dtype), device="cpu").labels
    np.testing.assert_array_equal(second, whole)


def test_output_is_an_ome_zarr_multiscale(volume, model_path, tmp_path):
    target = tmp_path / "out.ome.zarr"
    events = []
    result = run(VolumePredictor(model_path, volume[0], target, chunk=CHUNK), None, events.append)
    assert result == target
    assert events[-1] == (len(events), len(events)) and len(events) == 2 * 4 * 4
    multiscale = metadata(target)["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "y", "x"]
    assert multiscale["datasets"][0]["path"] == "0"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_existing_output_is_not_replaced(volume, model_path, tmp_path):
    target = tmp_path / "out.ome.zarr"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(UNetError, match="exists"):
        VolumePredictor(model_path, volume[0], target)
    with pytest.raises(UNetError, match="not an OME-Zarr"):
        VolumePredictor(model_path, volume[0], target, overwrite=True)
    assert (target / "notes.txt").read_text() == "mine"


def test_outputs_lie_where_the_input_lies(volume, model_path, tmp_path):
    calibrated = tmp_path / "calibrated.ome.zarr"
    root = zarr.open_group(str(calibrated), mode="w", zarr_format=2)
    root.create_array("0", data=volume[1][:, None], chunks=(1, 1, 128, 128))
    axes = [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "c", "type": "channel"},
        {"name": "y", "type": "space", "unit": "micrometer"},
        {"name": "x", "type": "space", "unit": "micrometer"},
    ]
    transforms = [
        {"type": "scale", "scale": [30.0, 1.0, 0.5, 0.25]},
        {"type": "translation", "translation": [0.0, 0.0, 10.0, 20.0]},
    ]
    dataset = {"path": "0", "coordinateTransformations": transforms}
    root.attrs["multiscales"] = [{"version": "0.4", "axes": axes, "datasets": [dataset]}]
    target = tmp_path / "out.ome.zarr"
    run(VolumePredictor(model_path, calibrated, target, chunk=CHUNK, instances_of=2))
    for group in (target, target / "labels" / "instances"):
        multiscale = metadata(group)["multiscales"][0]
        assert multiscale["axes"] == [axes[0], axes[2], axes[3]]
        first = multiscale["datasets"][0]["coordinateTransformations"]
        assert first == [
            {"type": "scale", "scale": [30.0, 0.5, 0.25]},
            {"type": "translation", "translation": [0.0, 10.0, 20.0]},
        ]
    second = metadata(target)["multiscales"][0]["datasets"][1]["coordinateTransformations"]
    assert second[0]["scale"] == [30.0, 1.0, 0.5], "levels halve y and x"


def test_an_output_in_a_missing_folder_is_refused_and_nothing_is_made(
    volume, model_path, tmp_path
):
    target = tmp_path / "nowhere" / "deeper" / "out.ome.zarr"
    with pytest.raises(UNetError, match="the folder .*deeper does not exist"):
        VolumePredictor(model_path, volume[0], target)
    assert not (tmp_path / "nowhere").exists()


def test_bad_volumes_and_chunks_are_refused(model_path, tmp_path, volume):
    with pytest.raises(UNetError, match="does not exist"):
        VolumePredictor(model_path, tmp_path / "missing.zarr", tmp_path / "o.zarr")
    (tmp_path / "group.zarr").mkdir()
    zarr.open_group(str(tmp_path / "group.zarr"), mode="w")
    with pytest.raises(UNetError, match="not an OME-Zarr"):
        VolumePredictor(model_path, tmp_path / "group.zarr", tmp_path / "o.zarr")
    with pytest.raises(UNetError, match="chunk size"):
        VolumePredictor(model_path, volume[0], tmp_path / "o.zarr", chunk=0)


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("distributed")
    client = cluster_client(workers=2)
    yield client
    client.close()
    client.cluster.close()


def test_two_local_workers_give_the_single_process_labels(
    client, volume, model_path, tmp_path, single
):
    target = tmp_path / "cluster.ome.zarr"
    run(VolumePredictor(model_path, volume[0], target, chunk=CHUNK, device="cpu"), client)
    np.testing.assert_array_equal(zarr.open_group(str(target), mode="r")["0"][...], single)


def test_a_killed_worker_is_retried_without_corrupting_the_output(
    client, volume, model_path, tmp_path, single
):
    target = tmp_path / "killed.ome.zarr"
    killed = []

    def kill_a_worker(done):
        if not killed:
            victim = sorted(client.scheduler_info()["workers"])[0]
            pid = client.run(os.getpid, workers=[victim])[victim]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    predictor = VolumePredictor(model_path, volume[0], target, chunk=CHUNK, device="cpu")
    run(predictor, client, kill_a_worker)
    assert killed
    np.testing.assert_array_equal(zarr.open_group(str(target), mode="r")["0"][...], single)


def test_napari_opens_the_output_as_multiscale_labels(request, model_path, tmp_path):
    pytest.importorskip("napari")
    make_napari_viewer = request.getfixturevalue("make_napari_viewer")
    source = tmp_path / "in.zarr"
    data = np.random.default_rng(0).integers(0, 255, (600, 600), dtype=np.uint8)
    zarr.open_array(str(source), mode="w", shape=data.shape, dtype=data.dtype)[...] = data
    target = tmp_path / "out.ome.zarr"
    run(VolumePredictor(model_path, source, target, chunk=CHUNK, device="cpu"))
    [layer] = make_napari_viewer().open(str(target), layer_type="labels")
    assert layer.multiscale and [level.shape for level in layer.data] == [
        (600, 600),
        (300, 300),
        (150, 150),
    ]


def test_plain_zarr_channels_are_given_or_guessed_and_packages_are_models(
    image, trained, tmp_path
):
    from napari_unet.engine.model import UNetConfig
    from napari_unet.engine.segmenter import Segmenter
    from napari_unet.storage.bioimageio import export_model

    rgb = Segmenter.new(UNetConfig(in_channels=3, depth=2, width=4))
    model = save_model(rgb, tmp_path / "rgb.safetensors")
    pixels = np.stack([image[:128, :128]] * 3)
    first = zarr.open_array(str(tmp_path / "cyx.zarr"), mode="w", shape=pixels.shape, dtype="u1")
    first[:] = pixels
    last = zarr.open_array(str(tmp_path / "yxc.zarr"), mode="w", shape=(128, 128, 3), dtype="u1")
    last[:] = np.moveaxis(pixels, 0, -1)
    expected = predict(rgb, pixels, channel_axis=0, device="cpu").labels
    for name, axis in (("cyx.zarr", 0), ("yxc.zarr", None), ("yxc.zarr", -1)):
        target = tmp_path / f"{name}-{axis}.ome.zarr"
        predictor = VolumePredictor(
            model, tmp_path / name, target, chunk=64, device="cpu", channel_axis=axis
        )
        run(predictor)
        np.testing.assert_array_equal(zarr.open_group(target)["0"][...], expected)
    with pytest.raises(UNetError, match="channel axis 3 does not exist"):
        VolumePredictor(model, tmp_path / "cyx.zarr", tmp_path / "x.ome.zarr", channel_axis=3)

    package = export_model(trained, tmp_path / "nuclei.zip")
    target = tmp_path / "from-package.ome.zarr"
    run(VolumePredictor(package, tmp_path / "cyx.zarr", target, chunk=64, device="cpu"))
    assert zarr.open_group(target)["0"].shape == (3, 128, 128)
