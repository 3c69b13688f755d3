import contextlib
import dataclasses
import gc
import threading

import numpy as np
import pytest
import torch
from scipy import ndimage

from napari_unet.engine import predict as predict_module
from napari_unet.engine.errors import UNetError
from napari_unet.engine.images import Normalization, as_stack
from napari_unet.engine.model import UNetConfig
from napari_unet.engine.objects import ObjectSettings
from napari_unet.engine.predict import (
    READER_THREAD,
    Predictor,
    PredictProgress,
    measure_scale,
    predict,
)
from napari_unet.engine.segmenter import Segmenter
from napari_unet.samples import nuclei
from napari_unet.storage.loading import load_model

from helpers import dice, run_to_end


def test_tiled_prediction_equals_whole_prediction(trained, image):
    # exact on the CPU; cuDNN picks other kernels for other tile shapes (the GPU test)
    whole = predict(trained, image, probabilities=True, tile_size=512, device="cpu")
    tiled = predict(trained, image, probabilities=True, tile_size=96, batch_size=3, device="cpu")
    assert np.abs(whole.probabilities - tiled.probabilities).max() < 1e-3
    assert np.array_equal(whole.labels, tiled.labels)


def test_outputs_have_the_input_shape_and_annotation_ids(trained, image):
    result = predict(trained, image, probabilities=True, instances_of=2)
    assert result.complete
    assert result.labels.shape == image.shape and result.labels.dtype == np.uint8
    assert set(np.unique(result.labels)) <= {1, 2}
    assert result.probabilities.shape == (2, *image.shape)
    assert result.probabilities.dtype == np.float32
    assert np.allclose(result.probabilities.sum(0), 1, atol=1e-3)
    assert result.instances.dtype == np.uint32
    assert result.instances.max() > 50  # the image holds 125 nuclei
    nuclei = result.labels == 2
    assert not (result.instances[~nuclei]).any()
    assert (result.instances[nuclei] > 0).mean() > 0.999


def test_stacks_are_predicted_slice_by_slice_with_progress(trained, image):
    stack = np.stack([image, image[::-1], image[:, ::-1]])  # flips: same percentiles
    # one slice per batch, as ``single`` below, so that both run the same kernels on any device
    predictor = Predictor(
        trained, stack, probabilities=True, probability_dtype="float16", batch_size=1
    )
    outputs = predictor.allocate()
    assert outputs.labels.shape == stack.shape
    assert outputs.probabilities.shape == (2, *stack.shape)
    assert outputs.probabilities.dtype == np.float16
    events, result = run_to_end(predictor.run())
    assert [e.done for e in events] == [1, 2, 3]
    assert all(isinstance(e, PredictProgress) for e in events)
    assert result.labels is outputs.labels  # filled in place, as layers show it
    single = predict(trained, stack[1]).labels
    assert (result.labels[1] == single).mean() > 0.9999


def test_instances_are_unique_across_slices(trained, image):
    stack = np.stack([image, image])
    instances = predict(trained, stack, instances_of=2, labels=False).instances
    first, second = set(np.unique(instances[0])) - {0}, set(np.unique(instances[1])) - {0}
    assert first and second and not first & second


def test_a_volume_gives_each_object_one_id_through_z(trained, image):
    stack = np.stack([image[:200, :240]] * 3)
    series = predict(trained, stack, instances_of=2, labels=False).instances
    predictor = Predictor(trained, stack, instances_of=2, volume=True, z_spacing=2.0)
    events, result = run_to_end(predictor.run())
    volume = result.instances
    assert len(events) == 3 and result.complete
    assert volume.dtype == np.uint32 and volume.shape == stack.shape
    assert (volume[0] == volume[1]).all() and (volume[1] == volume[2]).all()
    assert (volume[series > 0] > 0).all()  # specks below min_size pixels are voxels enough
    per_slice = len(np.unique(series[0])) - 1
    through = np.bincount(volume.ravel())[1:] >= len(stack) * ObjectSettings().min_size
    assert abs(int(through.sum()) - per_slice) <= 0.1 * per_slice


def test_volume_settings_are_checked_in_one_line(trained, image):
    with pytest.raises(UNetError, match="^a 2D image is not a volume"):
        Predictor(trained, image, instances_of=2, volume=True)
    for bad in (0, -2.0, float("nan"), float("inf")):
        with pytest.raises(UNetError, match=r"^the z spacing \(z step / pixel size\) must be"):
            Predictor(trained, np.stack([image] * 2), instances_of=2, volume=True, z_spacing=bad)


def test_lazy_dask_and_zarr_inputs_predict_like_numpy(trained, image, tmp_path):
    da = pytest.importorskip("dask.array")
    zarr = pytest.importorskip("zarr")
    stack = np.stack([image, image[::-1]])
    expected = predict(trained, stack).labels
    lazy = da.from_array(stack, chunks=(1, 512, 512))
    assert np.array_equal(predict(trained, lazy).labels, expected)
    stored = zarr.open_array(
        tmp_path / "in.zarr", mode="w", shape=stack.shape, chunks=(1, 512, 512), dtype=stack.dtype
    )
    stored[:] = stack
    assert np.array_equal(predict(trained, stored).labels, expected)


def test_results_can_be_written_to_a_zarr_store(trained, image, tmp_path):
    zarr = pytest.importorskip("zarr")
    stack = np.stack([image, image[::-1]])
    result = predict(trained, stack, probabilities=True, store=tmp_path / "out.zarr")
    reopened = zarr.open_array(tmp_path / "out.zarr" / "labels", mode="r")
    assert reopened.shape == stack.shape
    assert np.array_equal(reopened[:], predict(trained, stack).labels)
    assert zarr.open_array(tmp_path / "out.zarr" / "probabilities", mode="r").shape == (
        2,
        2,
        512,
        512,
    )
    assert result.complete


def test_stop_cancels_and_reports_incomplete(trained, image):
    stack = np.stack([image] * 4)
    predictor = Predictor(trained, stack, batch_size=1)
    run = predictor.run()
    next(run)
    predictor.stop()
    events, result = run_to_end(run)
    assert not result.complete
    assert len(events) < 3
    assert (result.labels[-1] == 0).all()  # never predicted


def test_rgb_and_odd_sized_images(trained):
    rng = np.random.default_rng(0)
    odd = rng.random((37, 53)).astype(np.float32)
    assert predict(trained, odd).labels.shape == (37, 53)
    rgb = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    with pytest.raises(UNetError, match="expects 1 channel.*has 3"):
        Predictor(trained, rgb, channel_axis=-1)


def test_out_of_memory_retries_in_smaller_batches(trained, image, monkeypatch):
    predictor = Predictor(trained, np.stack([image] * 2), tile_size=128, batch_size=8)
    real_forward = type(trained.net).forward
    sizes = []

    def forward(net, x):
        sizes.append(len(x))
        if len(x) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_forward(net, x)

    monkeypatch.setattr(type(trained.net), "forward", forward)
    _, result = run_to_end(predictor.run())
    assert result.complete
    assert sizes[:3] == [8, 4, 2] and max(sizes[2:]) <= 2
    assert predictor.batch_size <= 2


def test_invalid_prediction_options_are_refused(trained, image):
    with pytest.raises(UNetError, match="class id"):
        Predictor(trained, image, instances_of=5)
    with pytest.raises(UNetError, match="tile size"):
        Predictor(trained, image, tile_size=50)


def test_nan_in_a_slice_to_predict(trained, image):
    corrupt = np.stack([image, image]).astype(np.float32)
    corrupt[1, 5, 5] = np.nan
    predictor = Predictor(trained, corrupt)
    with pytest.raises(UNetError, match="slice 1.*NaN"):
        run_to_end(predictor.run())


def small_model(depth: int = 2, classes: int = 3) -> Segmenter:
    """An untrained U-Net: enough to check what prediction does with its outputs."""
    return Segmenter.new(UNetConfig(width=4, depth=depth, n_classes=classes))


def fixed_model() -> Segmenter:
    """``small_model`` with fixed normalisation: no slice is read before predicting."""
    fixed = Normalization(mode="fixed", low=[0.0], high=[1000.0])
    return dataclasses.replace(small_model(), normalization=fixed)


def smooth_stack(slices: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((slices, height // 8 + 2, width // 8 + 2))
    stack = noise.repeat(8, axis=1).repeat(8, axis=2)[:, :height, :width]
    return (1000 * stack + rng.random(stack.shape)).astype(np.float32)


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == READER_THREAD]


def test_tiles_are_exact_without_reduced_precision(monkeypatch):
    """With the network in float32, tiles give the whole image's numbers to rounding."""
    monkeypatch.setattr(predict_module, "autocast", lambda device: contextlib.nullcontext())
    segmenter, stack = small_model(depth=3), smooth_stack(2, 203, 317)
    # on the CPU: cuDNN computes float32 convolutions in TF32, with kernels that vary by shape
    whole = predict(segmenter, stack, probabilities=True, tile_size=320, device="cpu")
    tiled = predict(
        segmenter, stack, probabilities=True, tile_size=160, batch_size=5, device="cpu"
    )
    assert np.abs(whole.probabilities - tiled.probabilities).max() < 1e-5


def test_labels_are_the_argmax_of_the_probabilities():
    result = predict(small_model(), smooth_stack(3, 64, 96), probabilities=True)
    ordered = np.sort(result.probabilities, axis=0)
    clear = ordered[-1] > ordered[-2]  # no tie between the two best classes
    assert clear.mean() > 0.99
    labels = result.probabilities.argmax(0) + 1
    assert np.array_equal(result.labels[clear], labels[clear])


def test_float16_probabilities_are_close_to_float32():
    segmenter, stack = small_model(), smooth_stack(2, 64, 64)
    single = predict(segmenter, stack, probabilities=True).probabilities
    half = predict(segmenter, stack, probabilities=True, probability_dtype="float16")
    assert half.probabilities.dtype == np.float16
    assert np.abs(half.probabilities.astype(np.float32) - single).max() < 1e-3


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int16, np.int32, np.float64, bool])
def test_every_numeric_type_predicts_like_its_values_in_float32(dtype):
    """Small integers travel raw and are normalised on the device, exactly as float32 would
    be; wider types are normalised in float64 on the host (1 ulp apart at most)."""
    segmenter = small_model()
    high = {np.uint16: 60000, np.uint8: 250, np.int16: 30000, np.int32: 10**6}.get(dtype, 1)
    stack = smooth_stack(2, 48, 64) / 1001 * high
    stack = (stack > 0.5 if dtype is bool else stack).astype(dtype)
    expected = predict(segmenter, stack.astype(np.float32), probabilities=True)
    result = predict(segmenter, stack, probabilities=True)
    if np.dtype(dtype).itemsize <= 2:
        assert np.array_equal(result.probabilities, expected.probabilities)
    else:
        np.testing.assert_allclose(result.probabilities, expected.probabilities, atol=1e-5)
        assert np.array_equal(result.labels, expected.labels)


def test_the_input_image_is_never_changed():
    stack = smooth_stack(2, 40, 40)
    before = stack.copy()
    predict(small_model(), stack, probabilities=True)
    assert np.array_equal(stack, before)


def test_the_reader_thread_ends_when_stopped_closed_abandoned_or_failing():
    segmenter, stack = fixed_model(), smooth_stack(12, 32, 32)
    one = {"batch_size": 1}  # slice by slice on any device (a GPU would batch all 12)
    predictor = Predictor(segmenter, stack, **one)
    run = predictor.run()
    next(run)
    assert reader_threads()
    predictor.stop()
    events, result = run_to_end(run)
    assert not reader_threads()
    assert not result.complete and len(events) < 3

    run = Predictor(segmenter, stack, **one).run()
    next(run)
    run.close()
    assert not reader_threads()

    run = Predictor(segmenter, stack, **one).run()
    next(run)
    del run
    gc.collect()
    assert not reader_threads()

    stack[5, 3, 4] = np.nan
    run = Predictor(segmenter, stack, **one).run()
    with pytest.raises(UNetError, match="slice 5 .*NaN"):
        run_to_end(run)
    assert not reader_threads()


def test_slices_done_before_a_failing_slice_are_kept():
    stack = smooth_stack(6, 32, 32)
    stack[4] = np.inf
    predictor = Predictor(fixed_model(), stack)
    with pytest.raises(UNetError, match="slice 4"):
        run_to_end(predictor.run())
    assert (predictor.result.labels[:4] > 0).all()
    assert not predictor.result.complete


def test_dask_input_is_read_one_slice_at_a_time():
    da = pytest.importorskip("dask.array")
    reads = []

    def load(block, block_info=None):
        reads.append(block_info[None]["chunk-location"][0])
        return block

    stack = smooth_stack(16, 32, 32)
    lazy = da.from_array(stack, chunks=(1, 32, 32)).map_blocks(load, dtype=stack.dtype)
    segmenter = fixed_model()
    run = Predictor(segmenter, lazy, batch_size=1).run()
    next(run)
    assert len(reads) <= 6  # 2 predicted, 3 queued, 1 waiting for room: never the stack
    run.close()
    result = predict(segmenter, lazy)
    assert np.array_equal(result.labels, predict(segmenter, stack).labels)


def test_a_zarr_store_never_replaces_existing_data(tmp_path):
    pytest.importorskip("zarr")
    segmenter, stack = small_model(), smooth_stack(2, 32, 32)
    folder = tmp_path / "out.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    file = tmp_path / "image.tif"
    file.write_bytes(b"precious")
    for existing in (folder, file):
        with pytest.raises(UNetError, match="already exists"):
            Predictor(segmenter, stack, store=existing)
    assert (folder / "notes.txt").read_text() == "mine" and len(list(folder.iterdir())) == 1
    assert file.read_bytes() == b"precious"
    predict(segmenter, stack, store=tmp_path / "new.zarr")
    with pytest.raises(UNetError, match="already exists"):
        Predictor(segmenter, stack, store=tmp_path / "new.zarr")


def test_an_unwritable_store_is_refused_before_predicting(tmp_path):
    pytest.importorskip("zarr")
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("mine")
    with pytest.raises(UNetError, match="cannot write"):
        Predictor(small_model(), smooth_stack(1, 32, 32), store=not_a_folder / "out.zarr")
    assert not_a_folder.read_text() == "mine"
    with pytest.raises(UNetError, match="store must be a folder path, not int"):
        Predictor(small_model(), smooth_stack(1, 32, 32), store=5)


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("tile_size", 0, "tile size"),
        ("tile_size", -64, "tile size"),
        ("tile_size", float("nan"), "tile size must be a whole number"),
        ("tile_size", 128.0, "tile size must be a whole number"),
        ("tile_size", "256", "tile size must be a whole number"),
        ("tile_size", True, "tile size must be a whole number"),
        ("tile_size", 102, "multiple of 4"),
        ("batch_size", 0, "batch size must be a whole number from 1 to 1024"),
        ("batch_size", -2, "batch size must be a whole number from 1 to 1024"),
        ("batch_size", 2.5, "batch size must be a whole number"),
        ("probability_dtype", "int8", "float32 or float16"),
        ("probability_dtype", "float64", "float32 or float16"),
        ("probability_dtype", "half-ish", "float32 or float16"),
        ("probability_dtype", None, "float32 or float16"),
        ("instances_of", 1, "class id of the instances must be a whole number from 2 to 3"),
        ("instances_of", 4, "class id of the instances must be a whole number from 2 to 3"),
        ("instances_of", "2", "class id of the instances must be a whole number from 2 to 3"),
        ("instances_of", 2.0, "class id of the instances must be a whole number from 2 to 3"),
        ("device", "gpu", "unknown device"),
    ],
)
def test_bad_settings_are_refused_with_a_clear_error(option, value, message):
    with pytest.raises(UNetError, match=message):
        Predictor(small_model(), smooth_stack(1, 32, 32), **{option: value})


def test_asking_for_no_output_or_passing_the_wrong_objects_is_refused():
    image = smooth_stack(1, 32, 32)
    with pytest.raises(UNetError, match="at least one output"):
        Predictor(small_model(), image, labels=False)
    with pytest.raises(UNetError, match="needs a model"):
        Predictor("model.safetensors", image)
    with pytest.raises(UNetError, match="objects must be ObjectSettings"):
        Predictor(small_model(), image, instances_of=2, objects={"split": 0.5})


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_predicts_whole_slices_in_large_batches_like_the_cpu(trained, image):
    stack = np.stack([image, image[::-1], image[:, ::-1]] * 4)
    predictor = Predictor(trained, stack, probabilities=True, device="cuda")
    _, result = run_to_end(predictor.run())
    assert predictor.tile_size >= 512 and predictor.batch_size == 12
    on_cpu = predict(trained, stack, probabilities=True, device="cpu")
    assert (result.labels == on_cpu.labels).mean() > 0.999
    assert np.abs(result.probabilities - on_cpu.probabilities).max() < 0.05
    assert next(trained.net.parameters()).device.type == "cpu"
    tiled = predict(trained, stack[:2], device="cuda", tile_size=128, batch_size=7)
    assert (tiled.labels == result.labels[:2]).mean() > 0.999


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("scale", [0.5, 1.7, "auto"])
def test_the_gpu_rescales_slices_like_the_cpu(trained, image, scale):
    sized = dataclasses.replace(trained, object_diameter=12.5)  # "auto": about x0.5
    stack = np.stack([image, image[::-1]])
    on_gpu = predict(sized, stack, probabilities=True, scale=scale, device="cuda")
    on_cpu = predict(sized, stack, probabilities=True, scale=scale, device="cpu")
    assert on_gpu.scale == on_cpu.scale != 1
    assert on_gpu.labels.shape == stack.shape
    assert (on_gpu.labels == on_cpu.labels).mean() > 0.999
    assert np.abs(on_gpu.probabilities - on_cpu.probabilities).max() < 0.05


# rescaling to the model's object size (engine/object_size.py)


def smooth_nuclei(image) -> np.ndarray:
    """The nuclei sample blurred a little: little detail that resizing would lose."""
    return ndimage.gaussian_filter(image.astype(np.float32), 2)


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_a_rescaled_prediction_has_the_input_shape_and_agrees_with_scale_one(
    trained, image, scale
):
    smooth = smooth_nuclei(image)
    options = dict(probabilities=True, uncertainty=True, instances_of=2, device="cpu")
    same = predict(trained, smooth, **options)
    result = predict(trained, smooth, scale=scale, **options)
    assert result.complete
    assert result.labels.shape == result.instances.shape == result.uncertainty.shape
    assert result.labels.shape == smooth.shape and result.labels.dtype == np.uint8
    assert result.probabilities.shape == (2, *smooth.shape)
    assert np.allclose(result.probabilities.sum(0), 1, atol=1e-3)
    assert set(np.unique(result.labels)) == {1, 2}
    assert np.array_equal(result.labels, result.probabilities.argmax(0) + 1)
    assert dice(result.labels == 2, same.labels == 2) > 0.9
    assert not (result.instances[result.labels != 2]).any()
    count, expected = result.instances.max(), same.instances.max()
    assert abs(int(count) - int(expected)) < 0.3 * expected
    # not the same numbers as at scale 1: the slice was rescaled
    assert np.abs(result.probabilities - same.probabilities).max() > 0.05


def test_rescaled_slices_are_tiled_like_whole_ones(trained, image):
    crop = smooth_nuclei(image)[:150, :170]
    whole = predict(trained, crop, probabilities=True, scale=2.0, tile_size=512, device="cpu")
    tiled = predict(
        trained, crop, probabilities=True, scale=2.0, tile_size=96, batch_size=3, device="cpu"
    )
    assert whole.labels.shape == tiled.labels.shape == crop.shape
    assert np.abs(whole.probabilities - tiled.probabilities).max() < 1e-3


@pytest.mark.parametrize("scale", [0.25, 0.6, 1.7, 4.0])
def test_odd_sized_stacks_rescaled_keep_their_shape(scale):
    stack = smooth_stack(2, 45, 71)
    result = predict(fixed_model(), stack, probabilities=True, instances_of=2, scale=scale)
    assert result.complete
    assert result.labels.shape == result.instances.shape == stack.shape
    assert result.probabilities.shape == (3, *stack.shape)
    assert set(np.unique(result.labels)) <= {1, 2, 3}
    assert np.allclose(result.probabilities.sum(0), 1, atol=1e-3)


def test_auto_scale_leaves_a_model_without_an_object_size_at_scale_one(trained, image):
    assert trained.object_diameter is None
    result = predict(trained, image, scale="auto", device="cpu")
    assert result.scale == 1 and result.object_diameter is None
    assert np.array_equal(result.labels, predict(trained, image, device="cpu").labels)


def test_auto_scale_predicts_at_the_factor_measured(trained, image):
    small_objects = dataclasses.replace(trained, object_diameter=12.5)  # the sample: about 26
    predictor = Predictor(small_objects, image, device="cpu", scale="auto")
    _, result = run_to_end(predictor.run())
    assert 0.4 < result.scale < 0.6 and predictor.scale == result.scale
    assert 22 < result.object_diameter < 30
    assert result.labels.shape == image.shape
    at_factor = predict(small_objects, image, scale=result.scale, device="cpu")
    assert np.array_equal(result.labels, at_factor.labels)


def test_the_result_reports_a_given_scale(trained, image):
    result = predict(trained, image[:128, :128], scale=2.0, device="cpu")
    assert result.scale == 2.0 and result.object_diameter is None


@pytest.mark.parametrize(
    "value",
    [0, 0.1, 4.5, 10, -1, float("nan"), float("inf"), "big", "AUTO", "2", True, False, None],
)
def test_bad_scales_are_refused_with_a_clear_error(value):
    with pytest.raises(UNetError, match=r"^the scale factor must be a number from 0\.25 to 4"):
        Predictor(small_model(), smooth_stack(1, 32, 32), scale=value)


def test_the_ends_of_the_scale_range_are_accepted():
    for value in (0.25, 4, 1, np.float32(0.5), "auto"):
        Predictor(small_model(), smooth_stack(1, 32, 32), scale=value)


@pytest.fixture(scope="module")
def builtin() -> Segmenter:
    return load_model("nuclei")


def zoomed_sample(factor: float) -> np.ndarray:
    return ndimage.zoom(nuclei(), factor)


def test_the_builtin_model_measures_the_factor_that_brings_nuclei_to_its_size(builtin):
    target = builtin.object_diameter
    assert target is not None and 15 < target < 35
    factor, diameter = measure_scale(builtin, as_stack(nuclei()), device="cpu")
    assert factor == 1.0 and 0.8 < diameter / target < 1.25  # near the model's size: as it is
    factor_2, diameter_2 = measure_scale(builtin, as_stack(zoomed_sample(2)), device="cpu")
    assert 0.4 < factor_2 < 0.65 and 1.6 < diameter_2 / diameter < 2.4
    assert factor_2 == pytest.approx(target / diameter_2)
    half = as_stack(zoomed_sample(0.5))
    factor_half, diameter_half = measure_scale(builtin, half, device="cpu")
    assert 1.5 < factor_half < 2.5 and 0.4 < diameter_half / diameter < 0.6


def test_an_image_that_is_its_own_sample_is_measured_on_its_prediction(builtin):
    predictor = Predictor(builtin, nuclei(), scale="auto", device="cpu")
    events, result = run_to_end(predictor.run())
    assert len(events) == 1 and result.scale == 1.0  # one pass: kept as it is
    assert result.object_diameter == measure_scale(builtin, as_stack(nuclei()), device="cpu")[1]
    assert np.array_equal(result.labels, predict(builtin, nuclei(), device="cpu").labels)
    half = zoomed_sample(0.5)
    events, result = run_to_end(Predictor(builtin, half, scale="auto", device="cpu").run())
    assert len(events) == 2 and result.scale > 1.25  # measured, then predicted rescaled
    assert (result.scale, result.object_diameter) == measure_scale(
        builtin, as_stack(half), device="cpu"
    )
    at_factor = predict(builtin, half, scale=result.scale, device="cpu")
    assert np.array_equal(result.labels, at_factor.labels)


def test_only_the_slices_given_are_measured(builtin):
    zoomed = zoomed_sample(2)[:512, :512]
    stack = as_stack(np.stack([nuclei(), zoomed]))
    at_one, _ = measure_scale(builtin, stack, slices=[0], device="cpu")
    at_two, _ = measure_scale(builtin, stack, slices=[1], device="cpu")
    assert at_one == 1.0 and 0.4 < at_two < 0.7


def test_blank_slices_measure_nothing_in_a_stack_that_is_not_blank(builtin):
    image = nuclei()
    stack = np.stack([np.zeros_like(image)] * 2 + [image, np.zeros_like(image)])
    # slices 0, 1 and 3 are measured: nothing is found there, the factor stays 1
    assert measure_scale(builtin, as_stack(stack), device="cpu") == (1.0, None)
    result = predict(builtin, stack, scale="auto", device="cpu")
    assert result.scale == 1.0 and result.labels.shape == stack.shape


def test_a_model_without_an_object_size_measures_nothing(trained, image, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("predicted to measure a model without an object size")

    monkeypatch.setattr(predict_module, "predict", refuse)
    assert measure_scale(trained, as_stack(image), device="cpu") == (1.0, None)
