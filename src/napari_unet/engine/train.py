"""Training from sparse annotations, as a generator of progress events.

``Trainer.run()`` yields a :class:`TrainProgress` about every step (on a GPU: every
``report_every`` seconds, so that the host never waits for the device in between) and returns
the :class:`Segmenter`, also when :meth:`Trainer.stop` ends it early. The weights returned are,
by default, an exponential moving average of the weights over the last steps: smoother than the
last step's, and not chosen by a score on a few held-back pixels.
"""

import copy
import math
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import torch

from .. import __version__
from .annotations import check_shapes
from .augment import crop_size, vary_gray_values
from .checks import number, whole_number
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
from .losses import IGNORE, weighted_cross_entropy
from .model import UNetConfig
from .segmenter import Segmenter, check_class_names

CPU_ARCHITECTURE = {"depth": 3, "width": 16}
GPU_ARCHITECTURE = {"depth": 4, "width": 32}
CPU_SIZE = {"batch_size": 4, "patch_size": 128}
"""Chosen by time to quality on 2 cores: the same pixels per step as one 256² patch, but four
places of the annotations per step learn scribbles and touching objects faster
(benchmarks/README.md, sections 1 and 3)."""
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
    """

    steps: int | None = 1000
    time_limit: float | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    w0: float = 10.0
    sigma: float = 5.0
    augment: bool = True
    validation_fraction: float = 0.1
    eval_every: int = 25
    seed: int | None = 0
    device: str = "auto"
    depth: int | None = None
    width: int | None = None
    keep: str = "average"
    report_every: float | None = None

    def check(self) -> None:
        """Raise a UNetError naming the first setting out of range."""
        if self.steps is None and self.time_limit is None:
            raise UNetError("give a number of steps, a time limit, or both")
        _optional(whole_number, "number of steps", self.steps, 1, 10**9)
        _optional(number, "time limit (seconds)", self.time_limit, 0, 10**7, above=True)
        _optional(whole_number, "batch size", self.batch_size, 1, 1024)
        _optional(whole_number, "patch size", self.patch_size, 32, 4096)
        if self.patch_size is not None and self.patch_size % 16:
            raise UNetError(f"the patch size must be a multiple of 16, not {self.patch_size}")
        number("learning rate", self.learning_rate, 0, 1, above=True)
        number("weight decay", self.weight_decay, 0, 1)
        number("border weight w0", self.w0, 0, 1000)
        number("border width sigma (pixels)", self.sigma, 0, 1000, above=True)
        if not isinstance(self.augment, bool):
            raise UNetError(f"augment must be true or false, not {self.augment!r}")
        number("validation fraction", self.validation_fraction, 0, 0.5)
        whole_number("validation interval (eval_every)", self.eval_every, 1, 10**9)
        _optional(whole_number, "seed", self.seed, 0, 2**63 - 1)
        if self.device not in DEVICES:
            raise UNetError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        _optional(whole_number, "depth", self.depth, 1, 6)
        _optional(whole_number, "width", self.width, 1, 256)
        if self.keep not in KEEP:
            raise UNetError(f"keep must be one of {', '.join(KEEP)}, not {self.keep!r}")
        _optional(number, "report interval (seconds)", self.report_every, 0, 60)


def _finite(net: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in net.parameters())


def _optional(check, what: str, value, *bounds, **options) -> None:
    """``check`` the setting unless it is None (automatic or off)."""
    if value is not None:
        check(what, value, *bounds, **options)


@dataclass
class TrainProgress:
    """Training went on to ``step``; ``loss`` is the mean over the steps since the last event,
    ``mean_loss`` an exponential mean over about the last 50 steps (smooth enough to plot)."""

    step: int
    steps: int | None
    loss: float
    elapsed: float
    time_limit: float | None
    pixels_per_second: float
    validation_dice: float | None = None
    improved: bool = False
    mean_loss: float | None = None

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
    """Trains a new segmenter, or fine-tunes ``segmenter`` (which is left unchanged)."""

    def __init__(
        self,
        image,
        annotations,
        *,
        channel_axis: int | None = None,
        settings: TrainSettings | None = None,
        segmenter: Segmenter | None = None,
        class_names: list[str] | None = None,
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
        self.annotations = annotations if annotations.ndim == 3 else annotations[None]
        if segmenter is not None:
            check_channels(self.stack, segmenter.in_channels)
        self.segmenter = segmenter
        self.class_names = check_class_names(class_names)
        self.device = resolve_device(self.settings.device)
        self.architecture = self._architecture()
        self.patch_size = self._patch_size()
        self._stop = False

    def stop(self) -> None:
        """End the round after the current step; ``run`` then returns the weights to keep."""
        self._stop = True

    def run(self) -> Generator[TrainProgress, None, Segmenter]:
        s, device, patch = self.settings, self.device, self.patch_size
        generator = torch.Generator(device=device)
        if s.seed is None:
            generator.seed()
        else:
            generator.manual_seed(s.seed)
        base = self.segmenter
        normalization = (base.normalization if base else Normalization()).for_image(self.stack)
        crop = crop_size(patch) if s.augment else patch
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
        )
        segmenter = self._starting_point(max(data.counts), normalization)
        net = prepare(segmenter.net, device).train()
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay
        )
        scaler = torch.amp.GradScaler(enabled=needs_grad_scaler(device))
        sampler = data.sampler(device, generator, s.augment)
        windows = data.validation_windows()
        if windows is not None:
            windows = (
                windows[0].to(device, memory_format=torch.channels_last),
                windows[1].to(device),
            )
        average = WeightAverage(net) if s.keep == "average" else None
        scored = average.net if average else net
        batch = s.batch_size or self._batch_size(net)
        report_every = s.report_every
        if report_every is None:
            report_every = 0.0 if device.type == "cpu" else GPU_REPORT_EVERY
        best_state, best_score, mean_loss = None, -np.inf, None
        loss_sum, since = torch.zeros((), device=device), 0
        step, pixels, validated = 0, 0, 0
        start = last_report = time.perf_counter()
        done = self._done(step, start)
        with cudnn_benchmark(device):
            while not done:
                try:
                    images, targets, weights = sampler.sample(batch, patch, crop // 2)
                    if s.augment:
                        images = vary_gray_values(images, generator)
                    loss = self._step(net, optimizer, scaler, images, targets, weights)
                except Exception as error:
                    if not is_out_of_memory(error):
                        raise
                    loss = None  # out of the handler, the traceback frees the step's memory
                if loss is None:  # a fresh scaler too: the failed step may have half-unscaled it
                    batch = self._smaller_batch(batch)
                    scaler = torch.amp.GradScaler(enabled=needs_grad_scaler(device))
                    continue
                step += 1
                pixels += batch * patch**2
                loss_sum += loss
                since += 1
                if average:
                    average.update(step)
                done = self._done(step, start)
                now = time.perf_counter()
                if now - last_report < report_every and not done:
                    continue
                last_report = now
                loss_value = float(loss_sum) / since
                if not math.isfinite(loss_value) and not _finite(net):
                    raise UNetError(
                        "training diverged (the weights are no longer numbers): lower the "
                        "learning rate and train again; the model you started from is unchanged"
                    )
                blend = LOSS_DECAY**since
                mean_loss = loss_value if mean_loss is None else mean_loss
                mean_loss = blend * mean_loss + (1 - blend) * loss_value
                loss_sum.zero_()
                since = 0
                dice, improved = None, s.keep != "best"
                if step - validated >= s.eval_every or done:
                    validated = step
                    dice = self._validate(scored, windows) if windows else None
                    score = dice if dice is not None else -mean_loss
                    if s.keep == "best" and score >= best_score:
                        best_score, improved = score, True
                        best_state = {
                            k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()
                        }
                elapsed = time.perf_counter() - start
                yield TrainProgress(
                    step,
                    s.steps,
                    loss_value,
                    elapsed,
                    s.time_limit,
                    pixels / max(elapsed, 1e-9),
                    dice,
                    improved,
                    mean_loss,
                )
        if average:
            net.load_state_dict(average.net.state_dict())
        elif best_state is not None:
            net.load_state_dict(best_state)
        final_dice = self._validate(net, windows) if windows and step else None
        net = net.to("cpu", memory_format=torch.contiguous_format).eval()
        segmenter.history.append(
            {
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "steps": step,
                "seconds": round(time.perf_counter() - start, 2),
                "loss": mean_loss,
                "validation_dice": final_dice,
                "annotated_pixels": {str(k): v for k, v in data.counts.items()},
                "device": self.device.type,
                "batch_size": batch,
                "patch_size": patch,
                "keep": s.keep,
                "settings": asdict(s),
                "version": __version__,
            }
        )
        return segmenter

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
        if self.segmenter is not None:
            started = copy.deepcopy(self.segmenter)
            started.normalization = normalization
            return started
        config = UNetConfig(
            in_channels=self.stack.shape[-1], n_classes=max_id, **self.architecture
        )
        names = self.class_names
        if names is not None:
            names = (list(names) + [f"class {i}" for i in range(len(names) + 1, max_id + 1)])[
                :max_id
            ]
        segmenter = Segmenter.new(config, names, seed=self.settings.seed)
        segmenter.normalization = normalization
        return segmenter

    def _done(self, step: int, start: float) -> bool:
        s = self.settings
        return (
            self._stop
            or (s.steps is not None and step >= s.steps)
            or (s.time_limit is not None and time.perf_counter() - start >= s.time_limit)
        )

    def _step(self, net, optimizer, scaler, images, targets, weights) -> torch.Tensor:
        """One optimiser step; the loss stays on the device (reading it would wait for it)."""
        images = images.contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        with autocast(self.device):
            logits = net(images)
        loss = weighted_cross_entropy(logits, targets, weights)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
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
