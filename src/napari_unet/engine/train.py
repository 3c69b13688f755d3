"""Training from sparse annotations, as a generator of progress events.

``Trainer.run()`` yields a :class:`TrainProgress` about every step (on a GPU: every
``report_every`` seconds, so that the host never waits for the device in between) and returns
the :class:`Segmenter`, also when :meth:`Trainer.stop` ends it early. The weights returned are,
by default, an exponential moving average of the weights over the last steps: smoother than the
last step's, and not chosen by a score on a few held-back pixels.
"""

import copy
import functools
import math
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import torch

from .. import __version__
from .annotations import annotated_slices, check_shapes, objects_to_classes
from .augment import crop_size, vary_gray_values
from .checks import Bound, bound, check_fields
from .data import TrainingSet
from .device import (
    DEVICES,
    autocast,
    cudnn_benchmark,
    free_memory,
    is_out_of_memory,
    needs_grad_scaler,
    peak_memory,
    prepare,
    resolve_device,
)
from .errors import UNetError
from .images import Normalization, as_stack, check_channels, spatial_shape
from .losses import IGNORE, start_divergence, weighted_cross_entropy
from .model import UNetConfig
from .predict import measure_scale
from .segmenter import Segmenter, check_class_names
from .start_answers import start_answers

CPU_ARCHITECTURE = {"depth": 3, "width": 16}
GPU_ARCHITECTURE = {"depth": 4, "width": 32}
CPU_SIZE = {"batch_size": 4, "patch_size": 128}
"""Chosen by time to quality on 2 cores: the same pixels per step as one 256² patch, but four
places of the annotations per step learn scribbles and touching objects faster
(benchmarks/README.md, sections 1 and 3)."""
NEW_MODEL_RATE = 2e-3
FINE_TUNING_RATE = 1e-3
"""Half a new model's: at the full rate a round of corrections un-learns what the model knew
elsewhere, and later rounds fall below earlier ones (benchmarks/README.md, section 9)."""
GPU_PATCH = 256
GPU_MAX_BATCH = 32
KEEP = ("average", "last", "best")
AVERAGE_DECAY = 0.99
LOSS_DECAY = 0.98
GPU_REPORT_EVERY = 0.1


@dataclass
class TrainSettings:
    """What a training round does; ``None`` sizes are chosen for the device.

    ``keep`` picks the weights returned: "average" (an exponential moving average of the
    weights), "last" (the last step's) or "best" (the best Dice on the held-back pixels, the
    rule before "average"; a noisy hold-out makes it freeze an early step).

    ``keep_start`` (fine-tuning): how strongly the network is held to the start model's
    confident answers where nothing is annotated (:mod:`.start_answers`), against 1 for the
    annotations; 0 trains on the annotations alone.

    ``learning_rate``: None takes NEW_MODEL_RATE for a new model and FINE_TUNING_RATE to
    fine-tune one.

    ``rescale`` (fine-tuning a model that has an object diameter): train on the annotated
    slices rescaled as prediction rescales them (:mod:`.object_size`), so that the model learns
    the objects at the size it will see them.
    """

    steps: int | None = bound(1000, Bound("number of steps", int, 1, 10**9, optional=True))
    time_limit: float | None = bound(
        None, Bound("time limit (seconds)", float, 0, 10**7, above=True, optional=True)
    )
    batch_size: int | None = bound(None, Bound("batch size", int, 1, 1024, optional=True))
    patch_size: int | None = bound(
        None, Bound("patch size", int, 32, 4096, multiple=16, optional=True)
    )
    learning_rate: float | None = bound(
        None, Bound("learning rate", float, 0, 1, above=True, optional=True)
    )
    weight_decay: float = bound(1e-4, Bound("weight decay", float, 0, 1))
    w0: float = bound(10.0, Bound("border weight w0", float, 0, 1000))
    sigma: float = bound(5.0, Bound("border width sigma (pixels)", float, 0, 1000, above=True))
    augment: bool = True
    validation_fraction: float = bound(0.1, Bound("validation fraction", float, 0, 0.5))
    eval_every: int = bound(25, Bound("validation interval (eval_every)", int, 1, 10**9))
    seed: int | None = bound(0, Bound("seed", int, 0, 2**63 - 1, optional=True))
    device: str = "auto"
    depth: int | None = bound(None, Bound("depth", int, 1, 6, optional=True))
    width: int | None = bound(None, Bound("width", int, 1, 256, optional=True))
    keep: str = "average"
    keep_start: float = bound(0.5, Bound("weight of the start model's answers", float, 0, 100))
    rescale: bool = True
    report_every: float | None = bound(
        None, Bound("report interval (seconds)", float, 0, 60, optional=True)
    )

    def check(self) -> None:
        """Raise a UNetError naming the first setting out of range."""
        if self.steps is None and self.time_limit is None:
            raise UNetError("give a number of steps, a time limit, or both")
        check_fields(self)
        for name in ("augment", "rescale"):
            if not isinstance(getattr(self, name), bool):
                raise UNetError(f"{name} must be true or false, not {getattr(self, name)!r}")
        if self.device not in DEVICES:
            raise UNetError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.keep not in KEEP:
            raise UNetError(f"keep must be one of {', '.join(KEEP)}, not {self.keep!r}")


def _finite(net: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.parameters())


@dataclass
class TrainProgress:
    """Training went on to ``step``; ``loss`` is the mean over the steps since the last event,
    ``mean_loss`` an exponential mean over about the last 50 steps (smooth enough to plot);
    ``merged_regions`` how many painted regions merge objects the start model keeps apart
    (:func:`.start_answers.merged_regions`)."""

    step: int
    steps: int | None
    loss: float
    elapsed: float
    time_limit: float | None
    pixels_per_second: float
    validation_dice: float | None = None
    improved: bool = False
    mean_loss: float | None = None
    merged_regions: int = 0

    @property
    def fraction(self) -> float:
        """How far along the round is, 0..1, by steps or time, whichever is further."""
        parts = [0.0]
        if self.steps:
            parts.append(self.step / self.steps)
        if self.time_limit:
            parts.append(self.elapsed / self.time_limit)
        return min(max(parts), 1.0)


class Trainer:
    """Trains a new segmenter, or fine-tunes ``segmenter`` (which is left unchanged).

    With ``objects``, the annotations hold one id per object (2, 3, ...) of one class; they
    become class annotations (:func:`objects_to_classes`) when the round starts, in the thread
    that runs it.
    """

    def __init__(
        self,
        image,
        annotations,
        *,
        channel_axis: int | None = None,
        settings: TrainSettings | None = None,
        segmenter: Segmenter | None = None,
        class_names: list[str] | None = None,
        objects: bool = False,
    ):
        if settings is not None and not isinstance(settings, TrainSettings):
            raise UNetError("settings must be a TrainSettings")
        if segmenter is not None and not isinstance(segmenter, Segmenter):
            raise UNetError("the model to fine-tune must be a Segmenter (see io.load_model)")
        if not hasattr(annotations, "shape") or not hasattr(image, "shape"):
            raise UNetError("the image and the annotations must be arrays")
        self.settings = settings or TrainSettings()
        self.settings.check()
        check_shapes(spatial_shape(image, channel_axis), tuple(annotations.shape))
        self.stack = as_stack(image, channel_axis)
        self._given = annotations if annotations.ndim == 3 else annotations[None]
        self._objects = objects
        if segmenter is not None:
            check_channels(self.stack, segmenter.in_channels)
        self.segmenter = segmenter
        self.class_names = check_class_names(class_names)
        self.device = resolve_device(self.settings.device)
        self.architecture = self._architecture()
        self.patch_size = self._patch_size()
        self._stop = False

    @functools.cached_property
    def annotations(self):
        """The class annotations, (Z, Y, X)."""
        return objects_to_classes(self._given) if self._objects else self._given

    def stop(self) -> None:
        """End the round after the current step; ``run`` then returns the weights to keep."""
        self._stop = True

    def run(self) -> Generator[TrainProgress, None, Segmenter]:
        """Train until the steps, the time limit or :meth:`stop`; yield progress, return the
        segmenter holding the weights kept (see :class:`TrainSettings`)."""
        state = self._prepare()
        with cudnn_benchmark(self.device):
            while not state.done:
                loss = self._step_or_shrink(state)
                if loss is None:
                    continue
                event = self._record(state, loss)
                if event is not None:
                    yield event
        return self._finish(state)

    def _prepare(self) -> "_Round":
        """The round's data on the device, its starting segmenter, optimiser and sampler."""
        s, device, patch = self.settings, self.device, self.patch_size
        generator = torch.Generator(device=device)
        if s.seed is None:
            generator.seed()
        else:
            generator.manual_seed(s.seed)
        base = self.segmenter
        normalization = (base.normalization if base else Normalization()).for_image(self.stack)
        crop = crop_size(patch) if s.augment else patch
        scale, measured = 1.0, None
        if base is not None and s.rescale and (picks := annotated_slices(self.annotations)):
            scale, measured = measure_scale(base, self.stack, picks, device.type)
        answers, merged = None, 0
        if base is not None and s.keep_start > 0:

            def answers(images, labels):
                nonlocal merged
                probabilities, merged = start_answers(base, images, labels, device.type)
                return probabilities

        data = TrainingSet.build(
            self.stack,
            self.annotations,
            normalization,
            crop,
            n_classes=base.n_classes if base else None,
            w0=s.w0,
            sigma=s.sigma,
            validation_fraction=s.validation_fraction,
            seed=s.seed or 0,
            answers=answers,
            scale=scale,
        )
        segmenter = self._starting_point(max(data.counts), normalization)
        net = prepare(segmenter.net, device).train()
        windows = data.validation_windows()
        if windows is not None:
            windows = (
                windows[0].to(device, memory_format=torch.channels_last),
                windows[1].to(device),
            )
        average = WeightAverage(net) if s.keep == "average" else None
        rate = s.learning_rate
        if rate is None:
            rate = NEW_MODEL_RATE if base is None else FINE_TUNING_RATE
        report_every = s.report_every
        if report_every is None:
            report_every = 0.0 if device.type == "cpu" else GPU_REPORT_EVERY
        sampler = data.sampler(device, generator, s.augment)
        start = time.perf_counter()  # the time limit counts training, not getting ready
        return _Round(
            segmenter=segmenter,
            net=net,
            optimizer=torch.optim.AdamW(net.parameters(), lr=rate, weight_decay=s.weight_decay),
            scaler=torch.amp.GradScaler(enabled=needs_grad_scaler(device)),
            generator=generator,
            sampler=sampler,
            counts=data.counts,
            crop=crop,
            windows=windows,
            average=average,
            batch=s.batch_size or self._batch_size(net),
            report_every=report_every,
            loss_sum=torch.zeros((), device=device),
            start=start,
            last_report=start,
            done=self._done(0, start),
            scale=scale,
            measured=measured,
            merged_regions=merged,
        )

    def _step_or_shrink(self, state: "_Round") -> torch.Tensor | None:
        """One step on a fresh batch; None after running out of memory, with the batch halved
        (outside the handler, so that the failed step's memory is free) and a fresh scaler
        (the failed step may have half-unscaled the old one)."""
        try:
            images, targets, weights, answers = state.sampler.sample(
                state.batch, self.patch_size, state.crop // 2
            )
            if self.settings.augment:
                images = vary_gray_values(images, state.generator)
            return self._step(state, images, targets, weights, answers)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
        state.batch = self._smaller_batch(state.batch)
        state.scaler = torch.amp.GradScaler(enabled=needs_grad_scaler(self.device))
        return None

    def _record(self, state: "_Round", loss: torch.Tensor) -> TrainProgress | None:
        """Count a step; every ``report_every`` seconds (and at the end) read the loss back,
        validate when due and return a progress event."""
        s = self.settings
        state.step += 1
        state.pixels += state.batch * self.patch_size**2
        state.loss_sum += loss
        state.since += 1
        if state.average:
            state.average.update(state.step)
        state.done = self._done(state.step, state.start)
        now = time.perf_counter()
        if now - state.last_report < state.report_every and not state.done:
            return None
        state.last_report = now
        loss_value = float(state.loss_sum) / state.since
        if not math.isfinite(loss_value) and not _finite(state.net):
            raise UNetError(
                "training diverged (the weights are no longer numbers): lower the "
                "learning rate and train again; the model you started from is unchanged"
            )
        blend = LOSS_DECAY**state.since
        mean_loss = loss_value if state.mean_loss is None else state.mean_loss
        state.mean_loss = blend * mean_loss + (1 - blend) * loss_value
        state.loss_sum.zero_()
        state.since = 0
        dice, improved = None, s.keep != "best"
        if state.step - state.validated >= s.eval_every or state.done:
            state.validated = state.step
            dice, improved = self._score(state)
        elapsed = time.perf_counter() - state.start
        return TrainProgress(
            state.step,
            s.steps,
            loss_value,
            elapsed,
            s.time_limit,
            state.pixels / max(elapsed, 1e-9),
            dice,
            improved,
            state.mean_loss,
            state.merged_regions,
        )

    def _score(self, state: "_Round") -> tuple[float | None, bool]:
        """The held-back Dice of the weights to keep, and whether it is the best so far (with
        ``keep="best"``, whose weights are then copied)."""
        scored = state.average.net if state.average else state.net
        dice = self._validate(scored, state.windows) if state.windows else None
        score = dice if dice is not None else -state.mean_loss
        if self.settings.keep != "best":
            return dice, True
        if score < state.best_score:
            return dice, False
        state.best_score = score
        state.best_state = {
            k: v.detach().to("cpu", copy=True) for k, v in state.net.state_dict().items()
        }
        return dice, True

    def _finish(self, state: "_Round") -> Segmenter:
        """The kept weights back on the CPU, and the round added to the segmenter's history."""
        s, net = self.settings, state.net
        if state.average:
            net.load_state_dict(state.average.net.state_dict())
        elif state.best_state is not None:
            net.load_state_dict(state.best_state)
        final_dice = self._validate(net, state.windows) if state.windows and state.step else None
        net = net.to("cpu", memory_format=torch.contiguous_format).eval()
        state.segmenter.history.append(
            {
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "steps": state.step,
                "seconds": round(time.perf_counter() - state.start, 2),
                "loss": state.mean_loss,
                "validation_dice": final_dice,
                "annotated_pixels": {str(k): v for k, v in state.counts.items()},
                "device": self.device.type,
                "batch_size": state.batch,
                "patch_size": self.patch_size,
                "keep": s.keep,
                "learning_rate": state.optimizer.param_groups[0]["lr"],
                "scale": state.scale,
                "measured_diameter": state.measured,
                "merged_regions": state.merged_regions,
                "settings": asdict(s),
                "version": __version__,
            }
        )
        return state.segmenter

    def _architecture(self) -> dict[str, int]:
        if self.segmenter is not None:
            kept = {"depth": self.segmenter.config.depth, "width": self.segmenter.config.width}
            for name, value in kept.items():
                asked = getattr(self.settings, name)
                if asked is not None and asked != value:
                    raise UNetError(
                        f"the model to fine-tune has {name} {value}, not {asked}: fine-tuning "
                        f"keeps a model's {name}; leave it unset, or train a new model"
                    )
            return kept
        defaults = GPU_ARCHITECTURE if self.device.type != "cpu" else CPU_ARCHITECTURE
        s = self.settings
        return {
            "depth": defaults["depth"] if s.depth is None else s.depth,
            "width": defaults["width"] if s.width is None else s.width,
        }

    def _patch_size(self) -> int:
        """The patch side: the setting, checked against the image, or the device's default
        cut down to the image."""
        multiple = max(16, 2 ** self.architecture["depth"])
        side = max(self.stack.shape[1:3])
        fits = max(32, -(-side // multiple) * multiple)
        patch = self.settings.patch_size
        if patch is None:
            default = CPU_SIZE["patch_size"] if self.device.type == "cpu" else GPU_PATCH
            return min(max(default, multiple), fits)
        if patch % multiple:
            raise UNetError(
                f"a U-Net of depth {self.architecture['depth']} needs a patch size that is a "
                f"multiple of {multiple}, not {patch}"
            )
        if patch > max(2 * side, fits):
            raise UNetError(
                f"the patch size {patch} is far larger than the image ({side} pixels at most): "
                f"choose {fits} or less"
            )
        return patch

    def _batch_size(self, net: torch.nn.Module) -> int:
        """The CPU's batch; on a GPU, as many patches as fit in half its free memory, up to
        GPU_MAX_BATCH, from the memory one probe step on a copy of the net takes."""
        if self.device.type == "cpu":
            return CPU_SIZE["batch_size"]
        if self.device.type != "cuda":
            return 8
        n = 4
        images = torch.zeros(n, net.config.in_channels, self.patch_size, self.patch_size)
        images = images.to(self.device, memory_format=torch.channels_last)
        targets = torch.zeros(n, self.patch_size, self.patch_size, dtype=torch.long)
        targets = targets.to(self.device)

        def step() -> None:
            probe = copy.deepcopy(net)
            with autocast(self.device):
                logits = probe(images)
            weighted_cross_entropy(logits, targets, torch.ones_like(targets).float()).backward()

        used = peak_memory(self.device, step)
        if used is None:
            return 1
        fits = int(0.5 * free_memory(self.device) / max(used / n, 1))
        return max(1, min(GPU_MAX_BATCH, 2 ** int(math.log2(max(fits, 1)))))

    def _starting_point(self, max_id: int, normalization: Normalization) -> Segmenter:
        """A copy of the model to fine-tune (grown by the classes the annotations add), or a
        new segmenter for ids 1..``max_id``."""
        names = self.class_names
        if names is not None:
            default = [f"class {i}" for i in range(len(names) + 1, max_id + 1)]
            names = (list(names) + default)[:max_id]
        if self.segmenter is not None:
            if names is None:
                names = list(self.segmenter.class_names) + [
                    f"class {i}" for i in range(self.segmenter.n_classes + 1, max_id + 1)
                ]
            started = self.segmenter.with_classes(names)
            started.normalization = normalization
            return started
        config = UNetConfig(
            in_channels=self.stack.shape[-1], n_classes=max_id, **self.architecture
        )
        segmenter = Segmenter.new(config, names, seed=self.settings.seed)
        segmenter.normalization = normalization
        return segmenter

    def _done(self, step: int, start: float) -> bool:
        """Stopped, or the steps or the time limit reached: a time limit, however short, lets
        the round take its first step (a model of no steps would be kept as if trained)."""
        s = self.settings
        return (
            self._stop
            or (s.steps is not None and step >= s.steps)
            or (
                s.time_limit is not None
                and step > 0
                and time.perf_counter() - start >= s.time_limit
            )
        )

    def _step(self, state: "_Round", images, targets, weights, answers) -> torch.Tensor:
        """One optimiser step; the loss stays on the device (reading it would wait for it)."""
        images = images.contiguous(memory_format=torch.channels_last)
        state.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device):
            logits = state.net(images)
        loss = weighted_cross_entropy(logits, targets, weights)
        if answers is not None:
            loss = loss + self.settings.keep_start * start_divergence(logits, answers)
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
        return loss.detach()

    def _smaller_batch(self, batch: int) -> int:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if batch == 1:
            raise UNetError(
                "out of memory even with one patch per step: choose a smaller model or "
                "patch size, or train on the CPU"
            )
        return batch // 2

    @torch.no_grad()
    def _validate(self, net, windows) -> float:
        """Mean Dice over classes on the held-back annotated pixels."""
        images, targets = windows
        training = net.training
        net.eval()
        with autocast(self.device):
            logits = net(images)
        net.train(training)
        n = logits.shape[1]
        known = targets != IGNORE
        pairs = targets[known] * n + logits.argmax(1)[known]
        confusion = torch.bincount(pairs, minlength=n * n).view(n, n).double()
        truth, guess = confusion.sum(1), confusion.sum(0)
        dice = 2 * confusion.diagonal() / (truth + guess).clamp(min=1)
        return float(dice[truth > 0].mean())


@dataclass
class _Round:
    """What a training round carries from step to step."""

    segmenter: Segmenter
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    sampler: object
    counts: dict[int, int]
    crop: int
    windows: tuple[torch.Tensor, torch.Tensor] | None
    average: "WeightAverage | None"
    batch: int
    report_every: float
    loss_sum: torch.Tensor
    start: float
    last_report: float
    done: bool
    step: int = 0
    pixels: int = 0
    since: int = 0
    validated: int = 0
    mean_loss: float | None = None
    best_score: float = -math.inf
    best_state: dict | None = None
    scale: float = 1.0
    measured: float | None = None
    merged_regions: int = 0


class WeightAverage:
    """An exponential moving average of a net's weights and batch-norm statistics.

    The decay grows with the steps, ``min(AVERAGE_DECAY, (1 + step) / (10 + step))``, so that
    a short round averages only its last few steps and a long one about the last 100.
    """

    def __init__(self, net: torch.nn.Module):
        self.net = copy.deepcopy(net).eval()
        self.net.requires_grad_(False)
        mine, theirs = self.net.state_dict(), net.state_dict()
        floats = [k for k, v in mine.items() if v.is_floating_point()]
        self.mine, self.theirs = [mine[k] for k in floats], [theirs[k] for k in floats]

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Move the average towards the net's current weights."""
        decay = min(AVERAGE_DECAY, (1 + step) / (10 + step))
        torch._foreach_lerp_(self.mine, self.theirs, 1 - decay)
