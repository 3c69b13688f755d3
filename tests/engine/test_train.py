import dataclasses
import math

import numpy as np
import pytest
import torch

from napari_unet.engine.data import TrainingSet
from napari_unet.engine.errors import UNetError
from napari_unet.engine.model import UNet, UNetConfig
from napari_unet.engine.object_size import factor_for
from napari_unet.engine.predict import predict
from napari_unet.engine.train import (
    FINE_TUNING_RATE,
    NEW_MODEL_RATE,
    Trainer,
    TrainProgress,
    TrainSettings,
)
from napari_unet.samples import nuclei_instances

from helpers import TINY, dice, run_to_end, train, with_nan_weight


def test_a_tiny_unet_learns_the_nuclei_from_the_top_rows(image, annotations, truth):
    # on the CPU: an event per step, and thresholds met with the CPU's random numbers
    # (a GPU draws others; the GPU test checks learning there)
    settings = TrainSettings(steps=80, device="cpu", **TINY)
    events, segmenter = run_to_end(Trainer(image, annotations, settings=settings).run())
    losses = [e.loss for e in events]
    assert len(events) == 80
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    labels = predict(segmenter, image).labels
    unannotated = (slice(160, None), slice(None))
    chance = 2 * (truth[unannotated] == 2).mean() / (1 + (truth[unannotated] == 2).mean())
    score = dice(labels[unannotated] == 2, truth[unannotated] == 2)
    assert score > 0.75 > chance + 0.3
    assert segmenter.history[-1]["steps"] == 80
    assert segmenter.history[-1]["validation_dice"] > 0.6


def test_progress_events_describe_each_step(image, annotations):
    settings = TrainSettings(steps=6, device="cpu", **{**TINY, "eval_every": 3})
    events, _ = run_to_end(Trainer(image, annotations, settings=settings).run())
    assert all(isinstance(e, TrainProgress) for e in events)
    assert [e.step for e in events] == list(range(1, 7))
    assert events[-1].fraction == 1.0
    assert all(e.pixels_per_second > 0 and np.isfinite(e.loss) for e in events)
    assert [e.validation_dice is not None for e in events] == [False, False, True] * 2
    assert all(0 <= e.validation_dice <= 1 for e in events if e.validation_dice is not None)


def test_stop_mid_training_returns_the_segmenter(image, annotations):
    trainer = Trainer(image, annotations, settings=TrainSettings(steps=1000, **TINY))
    run = trainer.run()
    for _ in range(3):
        next(run)
    trainer.stop()
    events, segmenter = run_to_end(run)
    assert len(events) <= 1
    assert not segmenter.net.training
    assert predict(segmenter, image).labels.max() <= 2


def test_time_limit_ends_training(image, annotations):
    settings = TrainSettings(steps=None, time_limit=1.5, **TINY)
    events, _ = run_to_end(Trainer(image, annotations, settings=settings).run())
    assert 1.5 <= events[-1].elapsed < 4
    assert events[-1].fraction == 1.0


def test_a_time_limit_shorter_than_getting_ready_still_trains_a_step(image, annotations):
    settings = TrainSettings(steps=None, time_limit=1e-6, **TINY)
    segmenter = run_to_end(Trainer(image, annotations, settings=settings).run())[1]
    assert segmenter.history[-1]["steps"] == 1


def test_fine_tuning_keeps_classes_and_leaves_the_start_model_unchanged(
    image, annotations, trained
):
    before = {k: v.clone() for k, v in trained.net.state_dict().items()}
    trained_names = list(trained.class_names)
    settings = TrainSettings(steps=5, **TINY)
    only_background = annotations.copy()
    only_background[only_background == 2] = 0
    only_background[200:210, 200:210] = 2
    _, tuned = run_to_end(
        Trainer(image, only_background, settings=settings, segmenter=trained).run()
    )
    assert tuned.class_names == trained_names
    assert len(tuned.history) == len(trained.history) + 1
    after = trained.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    changed = tuned.net.state_dict()
    assert any(not torch.equal(before[k], changed[k]) for k in before)


def test_fine_tuning_takes_a_lower_rate_than_a_new_model_unless_one_is_given(
    image, annotations, trained
):
    assert FINE_TUNING_RATE < NEW_MODEL_RATE
    assert trained.history[-1]["learning_rate"] == NEW_MODEL_RATE
    settings = TrainSettings(steps=1, **TINY)
    tuned = train(image, annotations, settings=settings, segmenter=trained)
    assert tuned.history[-1]["learning_rate"] == FINE_TUNING_RATE
    given = dataclasses.replace(settings, learning_rate=5e-4)
    assert train(image, annotations, settings=given, segmenter=trained).history[-1][
        "learning_rate"
    ] == pytest.approx(5e-4)


def test_training_is_reproducible_with_a_seed(image, annotations):
    settings = TrainSettings(steps=3, report_every=0, **TINY)  # an event per step on any device
    first, _ = run_to_end(Trainer(image, annotations, settings=settings).run())
    second, _ = run_to_end(Trainer(image, annotations, settings=settings).run())
    assert [e.loss for e in first] == pytest.approx([e.loss for e in second], rel=1e-4)


def test_stacks_train_from_any_annotated_slices(image):
    stack = np.stack([image, image[::-1], image[:, ::-1]])
    annotations = np.zeros(stack.shape, np.uint8)
    annotations[1, 300:340, 100:400] = 1
    annotations[1, 100:110, 100:110] = 2
    annotations[2, 0:20, :] = 1
    settings = TrainSettings(steps=3, **TINY)
    _, segmenter = run_to_end(Trainer(stack, annotations, settings=settings).run())
    assert segmenter.history[-1]["steps"] == 3
    assert segmenter.history[-1]["annotated_pixels"] == {"1": 40 * 300 + 20 * 512, "2": 100}


def test_three_classes_and_class_names(image, annotations):
    annotations[100:128, 0:40][annotations[100:128, 0:40] == 1] = 3
    settings = TrainSettings(steps=3, **TINY)
    trainer = Trainer(image, annotations, settings=settings, class_names=["bg", "nucleus"])
    _, segmenter = run_to_end(trainer.run())
    assert segmenter.n_classes == 3
    assert segmenter.class_names == ["bg", "nucleus", "class 3"]


def test_training_without_border_weights_or_augmentation(image, annotations):
    settings = TrainSettings(steps=3, w0=0, augment=False, validation_fraction=0, **TINY)
    events, segmenter = run_to_end(Trainer(image, annotations, settings=settings).run())
    assert all(e.validation_dice is None for e in events)
    assert segmenter.history[-1]["validation_dice"] is None


def test_reports_every_interval_accumulate_the_loss_on_the_device(image, annotations):
    settings = TrainSettings(steps=12, report_every=60, **TINY)
    events, segmenter = run_to_end(Trainer(image, annotations, settings=settings).run())
    assert [e.step for e in events] == [12]  # one report, at the end: 12 steps < 60 s
    assert np.isfinite(events[0].loss) and events[0].mean_loss == pytest.approx(events[0].loss)
    assert segmenter.history[-1]["steps"] == 12


def test_mean_loss_is_smoother_than_the_loss(image, annotations):
    settings = TrainSettings(steps=30, report_every=0, **TINY)  # an event per step on any device
    events, _ = run_to_end(Trainer(image, annotations, settings=settings).run())
    losses = np.array([e.loss for e in events])
    means = np.array([e.mean_loss for e in events])
    assert events[0].mean_loss == events[0].loss
    assert np.abs(np.diff(means)).mean() < 0.5 * np.abs(np.diff(losses)).mean()


def test_more_training_returns_a_newer_model(image, annotations):
    def weights(steps: int, keep: str) -> dict:
        settings = TrainSettings(steps=steps, keep=keep, **{**TINY, "eval_every": 5})
        _, segmenter = run_to_end(Trainer(image, annotations, settings=settings).run())
        return segmenter.net.state_dict()

    short, long, last = weights(10, "average"), weights(20, "average"), weights(20, "last")
    assert any(not torch.equal(short[k], long[k]) for k in short)
    assert any(not torch.equal(long[k], last[k]) for k in long)  # an average, not the last step
    closer = [
        (long[k] - last[k]).norm() < (short[k] - last[k]).norm()
        for k in long
        if k.endswith("weight") and long[k].ndim == 4
    ]
    assert np.mean(closer) > 0.8


def test_scribbles_give_no_validation_dice(image):
    scribbles = np.zeros(image.shape, np.uint8)
    scribbles[10:13, 20:200] = 1  # background strokes
    scribbles[60:63, 300:480] = 1
    scribbles[100:103, 0:150] = 1
    nuclei = nuclei_instances()
    for label in np.unique(nuclei[:128])[1:6]:
        ys, xs = np.nonzero(nuclei == label)
        scribbles[ys[len(ys) // 2] : ys[len(ys) // 2] + 2, xs.min() + 2 : xs.max() - 2] = 2
    settings = TrainSettings(steps=6, **{**TINY, "eval_every": 3})
    events, segmenter = run_to_end(Trainer(image, scribbles, settings=settings).run())
    assert all(e.validation_dice is None for e in events)
    assert segmenter.history[-1]["validation_dice"] is None


def test_out_of_memory_halves_the_batch(image, annotations, monkeypatch):
    trainer = Trainer(image, annotations, settings=TrainSettings(steps=2, **TINY))
    real_step = trainer._step
    batches = []

    def step(net, optimizer, scaler, images, *rest):
        batches.append(len(images))
        if len(images) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real_step(net, optimizer, scaler, images, *rest)

    monkeypatch.setattr(trainer, "_step", step)
    _, segmenter = run_to_end(trainer.run())
    assert batches[:3] == [4, 2, 1]
    assert segmenter.history[-1]["steps"] == 2 and segmenter.history[-1]["batch_size"] == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_the_gpu_picks_sizes_and_reports_without_waiting(image, annotations):
    settings = TrainSettings(steps=None, time_limit=3, device="cuda", depth=2, width=8)
    trainer = Trainer(image, annotations, settings=settings)
    events, segmenter = run_to_end(trainer.run())
    assert trainer.patch_size == 256
    assert 1 <= segmenter.history[-1]["batch_size"] <= 32
    assert events[-1].step > len(events)  # several steps per event
    gaps = np.diff([e.elapsed for e in events])  # cuDNN tunes the first step and validation
    assert np.percentile(gaps, 90) < 0.5 and gaps.max() < 3
    assert segmenter.history[-1]["validation_dice"] > 0.5
    assert next(segmenter.net.parameters()).device.type == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_sampling_augmenting_and_stepping_never_wait_for_the_gpu(image, annotations):
    from napari_unet.engine.augment import crop_size, vary_gray_values
    from napari_unet.engine.data import TrainingSet
    from napari_unet.engine.images import Normalization, as_stack
    from napari_unet.engine.model import UNet, UNetConfig

    settings = TrainSettings(steps=10, device="cuda", batch_size=4, patch_size=128)
    trainer = Trainer(image, annotations, settings=settings)
    stack = as_stack(image)
    data = TrainingSet.build(
        stack, annotations[None], Normalization().for_image(stack), crop_size(128)
    )
    generator = torch.Generator(device="cuda").manual_seed(0)
    sampler = data.sampler(torch.device("cuda"), generator)
    net = UNet(UNetConfig(depth=2, width=8)).cuda().to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(net.parameters())
    scaler = torch.amp.GradScaler(enabled=False)
    total = torch.zeros((), device="cuda")
    for sync_mode in ("default", "error"):  # warm up, then fail on any synchronisation
        torch.cuda.set_sync_debug_mode(sync_mode)
        try:
            for _ in range(3):
                images, targets, weights, _ = sampler.sample(4, 128, crop_size(128) // 2)
                images = vary_gray_values(images, generator)
                total += trainer._step(net, optimizer, scaler, images, targets, weights)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(total).item()


BAD = [
    ({"steps": 0}, "number of steps"),
    ({"steps": -5}, "number of steps"),
    ({"steps": math.nan}, "number of steps"),
    ({"steps": 2.5}, "number of steps"),
    ({"steps": None, "time_limit": None}, "steps, a time limit"),
    ({"time_limit": math.nan}, "time limit"),
    ({"time_limit": math.inf}, "time limit"),
    ({"time_limit": 0}, "time limit"),
    ({"time_limit": -1.0}, "time limit"),
    ({"batch_size": 0}, "batch size"),
    ({"batch_size": math.nan}, "batch size"),
    ({"patch_size": 0}, "patch size"),
    ({"patch_size": 100}, "multiple of 16"),
    ({"patch_size": 10**6}, "patch size"),
    ({"w0": -1.0}, "w0"),
    ({"w0": math.nan}, "w0"),
    ({"sigma": 0}, "sigma"),
    ({"sigma": -2.0}, "sigma"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"depth": 0}, "depth"),
    ({"depth": 9}, "depth"),
    ({"width": 0}, "width"),
    ({"width": "16"}, "width"),
    ({"learning_rate": 0}, "learning rate"),
    ({"learning_rate": math.inf}, "learning rate"),
    ({"learning_rate": 5.0}, "learning rate"),
    ({"weight_decay": -0.1}, "weight decay"),
    ({"validation_fraction": 0.9}, "validation fraction"),
    ({"eval_every": 0}, "eval_every"),
    ({"augment": "yes"}, "augment"),
    ({"device": "tpu"}, "unknown device"),
    ({"keep": "newest"}, "keep must be"),
    ({"report_every": -1.0}, "report interval"),
    ({"rescale": "yes"}, "rescale must be true or false"),
    ({"rescale": 1}, "rescale must be true or false"),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_bad_settings_are_refused_with_a_clear_error(changes, message):
    with pytest.raises(UNetError, match=message):
        TrainSettings(**changes).check()


@pytest.mark.parametrize(("changes", "message"), BAD[:6])
def test_the_trainer_checks_its_settings_before_any_work(image, annotations, changes, message):
    with pytest.raises(UNetError, match=message):
        Trainer(image, annotations, settings=TrainSettings(**changes))


def test_the_defaults_are_valid_and_sizes_are_chosen_for_the_device(image, annotations):
    TrainSettings().check()
    trainer = Trainer(image, annotations, settings=TrainSettings(device="cpu"))
    assert trainer.patch_size in (128, 256)
    assert trainer.architecture == {"depth": 3, "width": 16}


def test_a_patch_far_larger_than_the_image_is_refused():
    small = np.random.default_rng(0).random((40, 50)).astype(np.float32)
    labels = np.ones((40, 50), np.uint8)
    labels[10:20, 10:20] = 2
    with pytest.raises(UNetError, match="far larger than the image"):
        Trainer(small, labels, settings=TrainSettings(patch_size=256))
    trainer = Trainer(
        small, labels, settings=TrainSettings(device="cpu", **{**TINY, "patch_size": None})
    )
    assert trainer.patch_size == 64  # the default, cut down to the image


def test_the_patch_must_suit_the_depth(image, annotations):
    with pytest.raises(UNetError, match="multiple of 64"):
        Trainer(image, annotations, settings=TrainSettings(depth=6, patch_size=96))


def test_wrong_argument_types_give_clear_errors(image, annotations):
    with pytest.raises(UNetError, match="TrainSettings"):
        Trainer(image, annotations, settings={"steps": 3})
    with pytest.raises(UNetError, match="Segmenter"):
        Trainer(image, annotations, segmenter=UNet(UNetConfig()))
    with pytest.raises(UNetError, match="arrays"):
        Trainer(image, annotations.tolist())


def test_small_images_still_train_and_predict():
    rng = np.random.default_rng(0)
    image = rng.random((20, 24)).astype(np.float32)
    annotations = np.ones((20, 24), np.uint8)
    annotations[image > 0.5] = 2
    segmenter = train(image, annotations, TrainSettings(steps=2, **dict(TINY, patch_size=32)))
    assert predict(segmenter, image).labels.shape == (20, 24)


def test_fine_tuning_with_wrong_channels_or_new_classes(trained, image, annotations):
    with pytest.raises(UNetError, match="expects 1 channel.*has 2"):
        Trainer(np.stack([image, image], -1), annotations, channel_axis=-1, segmenter=trained)
    with pytest.raises(UNetError, match="knows ids 1..2.*id 3 is not annotated"):
        train(image, np.where(annotations == 2, 4, annotations), segmenter=trained)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": None, "time_limit": None}, "steps, a time limit"),
        ({"steps": 0}, "steps must be .* from 1"),
        ({"time_limit": -1}, "time limit"),
        ({"patch_size": 50}, "multiple of 16"),
        ({"device": "tpu"}, "unknown device"),
    ],
)
def test_bad_settings(image, annotations, kwargs, message):
    with pytest.raises(UNetError, match=message):
        Trainer(image, annotations, settings=TrainSettings(**kwargs))


def test_training_that_diverges_stops_with_a_clear_message(image, annotations, trained):
    start = with_nan_weight(trained)
    kept = {k: v.clone() for k, v in start.net.state_dict().items()}
    settings = TrainSettings(steps=3, device="cpu", batch_size=2, patch_size=64)
    trainer = Trainer(image, annotations, settings=settings, segmenter=start)
    with pytest.raises(UNetError, match="training diverged"):
        run_to_end(trainer.run())
    for key, value in start.net.state_dict().items():
        assert torch.equal(value.isnan(), kept[key].isnan())
        assert torch.equal(value.nan_to_num(), kept[key].nan_to_num())
    assert np.isfinite(next(trained.net.parameters()).detach().numpy()).all()


def test_fine_tuning_keeps_the_architecture_and_says_so(trained, image, annotations):
    same = TrainSettings(steps=1, device="cpu", depth=trained.config.depth)
    assert Trainer(image, annotations, settings=same, segmenter=trained).architecture == {
        "depth": trained.config.depth,
        "width": trained.config.width,
    }
    deeper = TrainSettings(steps=1, device="cpu", depth=trained.config.depth + 1)
    with pytest.raises(UNetError, match="fine-tuning keeps a model's depth"):
        Trainer(image, annotations, settings=deeper, segmenter=trained)


# fine-tuning at the model's object size (engine/object_size.py)


def with_object_size(segmenter, diameter: float):
    return dataclasses.replace(segmenter, object_diameter=diameter)


def built_sets(monkeypatch) -> list[tuple[float, tuple[int, ...]]]:
    """(scale, unpadded target shape) of each training set the trainer builds."""
    built = []
    original = TrainingSet.build.__func__

    def build(cls, *args, **kwargs):
        data = original(cls, *args, **kwargs)
        p = data.pad
        built.append((kwargs.get("scale", 1.0), tuple(data.targets[:, p:-p, p:-p].shape)))
        return data

    monkeypatch.setattr(TrainingSet, "build", classmethod(build))
    return built


def test_fine_tuning_a_model_with_an_object_size_trains_at_the_factor_measured(
    trained, image, annotations, monkeypatch
):
    start = with_object_size(trained, 12.5)  # the sample's nuclei: about 25 across
    built = built_sets(monkeypatch)
    tuned = train(image, annotations, TrainSettings(steps=2, **TINY), segmenter=start)
    record = tuned.history[-1]
    assert 0.35 < record["scale"] < 0.65
    assert 18 < record["measured_diameter"] < 32
    assert record["scale"] == pytest.approx(
        factor_for(record["measured_diameter"], start.object_diameter)
    )
    side = round(512 * record["scale"])
    assert built == [(record["scale"], (1, side, side))]  # the slice, rescaled
    assert tuned.object_diameter == 12.5  # kept: predicting measures again
    assert record["settings"]["rescale"] is True


def test_fine_tuning_without_rescaling_trains_at_the_image_scale(
    trained, image, annotations, monkeypatch
):
    start = with_object_size(trained, 12.5)
    built = built_sets(monkeypatch)
    settings = TrainSettings(steps=2, rescale=False, **TINY)
    tuned = train(image, annotations, settings, segmenter=start)
    record = tuned.history[-1]
    assert record["scale"] == 1 and record["measured_diameter"] is None
    assert built == [(1.0, (1, 512, 512))]
    assert tuned.object_diameter == 12.5 and record["settings"]["rescale"] is False


def test_models_without_an_object_size_train_at_the_image_scale(trained, image, annotations):
    assert trained.object_diameter is None
    tuned = train(image, annotations, TrainSettings(steps=2, **TINY), segmenter=trained)
    assert tuned.history[-1]["scale"] == 1 and tuned.history[-1]["measured_diameter"] is None
    assert tuned.object_diameter is None
    new = train(image, annotations, TrainSettings(steps=2, **TINY))
    assert new.history[-1]["scale"] == 1 and new.object_diameter is None


def test_fine_tuning_a_sized_model_on_no_annotation_says_what_to_paint(trained, image):
    start = with_object_size(trained, 12.5)
    nothing = np.zeros(image.shape, np.uint8)
    with pytest.raises(UNetError, match="no pixel is annotated"):
        train(image, nothing, TrainSettings(steps=1, **TINY), segmenter=start)


def test_objects_become_classes_with_gaps_when_the_round_starts(image):
    ids = np.zeros(image.shape, np.uint16)
    ids[100:140, 100:160] = 1
    ids[110:130, 110:130], ids[110:130, 130:150] = 2, 3
    trainer = Trainer(image, ids, settings=TrainSettings(steps=1, **TINY), objects=True)
    assert "annotations" not in vars(trainer), "not converted where the trainer is made"
    run_to_end(trainer.run())
    classes = trainer.annotations[0]
    assert classes[120, 120] == classes[120, 140] == 2
    assert classes[120, 129] == classes[120, 130] == 1, "a background gap where they touch"
    assert np.array_equal(ids[110:130, 110:130], np.full((20, 20), 2)), "the ids are unchanged"
