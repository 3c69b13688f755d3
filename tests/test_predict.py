import dask.array as da
import numpy as np
import pytest
import torch
import zarr

from napari_unet.errors import UNetError
from napari_unet.predict import Predictor, PredictProgress, predict
from napari_unet.tiling import kept_ranges, tile_starts

from conftest import run_to_end


def test_tiles_cover_the_axis_once_and_start_on_the_pooling_grid():
    starts = tile_starts(1008, 256, 32, 16)
    assert all(s % 16 == 0 for s in starts)
    assert starts[-1] + 256 == 1008
    ranges = kept_ranges(starts, 256, 1008)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1008
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for start, (lo, hi) in zip(starts, ranges, strict=True):
        assert lo >= start and hi <= start + 256
        assert lo == 0 or lo - start >= 32
        assert hi == 1008 or start + 256 - hi >= 32


def test_tiled_prediction_equals_whole_prediction_away_from_the_border(trained, image):
    whole = predict(trained, image, probabilities=True, tile_size=512)
    tiled = predict(trained, image, probabilities=True, tile_size=96, batch_size=3)
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert np.abs(whole.probabilities[inner] - tiled.probabilities[inner]).max() < 0.05
    assert (whole.labels != tiled.labels).mean() < 1e-3


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
    assert ((result.instances > 0) == (result.labels == 2)).all()


def test_stacks_are_predicted_slice_by_slice_with_progress(trained, image):
    stack = np.stack([image, image[::-1], image[:, ::-1]])  # flips: same percentiles
    predictor = Predictor(trained, stack, probabilities=True, probability_dtype="float16")
    outputs = predictor.outputs()
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


def test_lazy_dask_and_zarr_inputs_predict_like_numpy(trained, image, tmp_path):
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
