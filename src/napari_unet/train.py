"""Training from sparse annotations, as a generator of progress events.

``Trainer.run()`` yields a :class:`TrainProgress` after every step and returns the
:class:`Segmenter` with the best weights seen, also when :meth:`Trainer.stop` ends it early.
"""

import copy
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import torch

from . import __version__
from .annotations import check_shapes
from .augment import augment, crop_size
from .data import TrainingSet
from .device import autocast, is_out_of_memory, needs_grad_scaler, prepare, resolve_device
from .errors import UNetError
from .images import Normalization, as_stack, spatial_shape
from .losses import IGNORE, weighted_cross_entropy
from .model import UNetConfig
from .segmenter import Segmenter

CPU_ARCHITECTURE = {"depth": 3, "width": 16}
GPU_ARCHITECTURE = {"depth": 4, "width": 32}


@dataclass
class TrainSettings:
    """What a training round does; the defaults suit CPU fine-tuning."""

    steps: int | None = 1000
    time_limit: float | None = None
    batch_size: int = 4
    patch_size: int = 128
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

    def check(self) -> None:
        if self.steps is None and self.time_limit is None:
            raise UNetError("give a number of steps, a time limit, or both")
        if self.steps is not None and self.steps < 1:
            raise UNetError("the number of steps must be at least 1")
        if self.time_limit is not None and self.time_limit <= 0:
            raise UNetError("the time limit must be positive")
        if self.batch_size < 1 or self.patch_size < 32 or self.patch_size % 16:
            raise UNetError("batch size must be >= 1 and patch size a multiple of 16, >= 32")


@dataclass
class TrainProgress:
    """One training step done."""

    step: int
    steps: int | None
    loss: float
    elapsed: float
    time_limit: float | None
    pixels_per_second: float
    validation_dice: float | None = None
    improved: bool = False

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
        self.settings = settings or TrainSettings()
        self.settings.check()
        check_shapes(spatial_shape(image, channel_axis), tuple(annotations.shape))
        self.stack = as_stack(image, channel_axis)
        self.annotations = annotations if annotations.ndim == 3 else annotations[None]
        channels = self.stack.shape[-1]
        if segmenter is not None and segmenter.in_channels != channels:
            raise UNetError(
                f"the model expects {segmenter.in_channels} channel(s) but the image has "
                f"{channels}"
            )
        self.segmenter = segmenter
        self.class_names = class_names
        self.device = resolve_device(self.settings.device)
        self._stop = False

    def stop(self) -> None:
        """End the round after the current step; ``run`` then returns the best weights."""
        self._stop = True

    def run(self) -> Generator[TrainProgress, None, Segmenter]:
        s = self.settings
        generator = torch.Generator().manual_seed(s.seed if s.seed is not None else 0)
        if s.seed is None:
            generator.seed()
        base = self.segmenter
        normalization = (base.normalization if base else Normalization()).for_image(self.stack)
        crop = crop_size(s.patch_size) if s.augment else s.patch_size
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
        net = prepare(segmenter.net, self.device).train()
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=s.learning_rate, weight_decay=s.weight_decay
        )
        scaler = torch.amp.GradScaler(enabled=needs_grad_scaler(self.device))
        sampler = data.sampler(generator)
        windows = data.validation_windows()
        best_state, best_score, ema = None, -np.inf, None
        batch, step, pixels = s.batch_size, 0, 0
        start = time.perf_counter()
        while not self._done(step, start):
            images, targets, weights = sampler.sample(batch, crop)
            if s.augment:
                images, targets, weights = augment(
                    images, targets, weights, s.patch_size, generator
                )
            try:
                loss = self._step(net, optimizer, scaler, images, targets, weights)
            except Exception as error:
                if not is_out_of_memory(error):
                    raise
                batch = self._smaller_batch(batch)
                continue
            step += 1
            pixels += images.shape[0] * s.patch_size**2
            ema = loss if ema is None else 0.9 * ema + 0.1 * loss
            dice, improved = None, False
            if step % s.eval_every == 0 or self._done(step, start):
                dice = self._validate(net, windows) if windows else None
                score = dice if dice is not None else -ema
                if score >= best_score:
                    best_score, improved = score, True
                    best_state = {
                        k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()
                    }
            elapsed = time.perf_counter() - start
            yield TrainProgress(
                step,
                s.steps,
                loss,
                elapsed,
                s.time_limit,
                pixels / max(elapsed, 1e-9),
                dice,
                improved,
            )
        net = net.to("cpu", memory_format=torch.contiguous_format).eval()
        if best_state is not None:
            net.load_state_dict(best_state)
        segmenter.history.append(
            {
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "steps": step,
                "seconds": round(time.perf_counter() - start, 2),
                "loss": ema,
                "validation_dice": best_score if windows and best_state is not None else None,
                "annotated_pixels": {str(k): v for k, v in data.counts.items()},
                "device": self.device.type,
                "settings": asdict(s),
                "version": __version__,
            }
        )
        return segmenter

    def _starting_point(self, max_id: int, normalization: Normalization) -> Segmenter:
        if self.segmenter is not None:
            started = copy.deepcopy(self.segmenter)
            started.normalization = normalization
            return started
        defaults = GPU_ARCHITECTURE if self.device.type != "cpu" else CPU_ARCHITECTURE
        config = UNetConfig(
            in_channels=self.stack.shape[-1],
            n_classes=max_id,
            depth=self.settings.depth or defaults["depth"],
            width=self.settings.width or defaults["width"],
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

    def _step(self, net, optimizer, scaler, images, targets, weights) -> float:
        images = images.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        weights = weights.to(self.device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with autocast(self.device):
            logits = net(images)
        loss = weighted_cross_entropy(logits, targets, weights)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return float(loss.detach())

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
        net.eval()
        with autocast(self.device):
            logits = net(images.to(self.device, memory_format=torch.channels_last))
        net.train()
        predicted = logits.argmax(1).cpu()
        known = targets != IGNORE
        scores = []
        for k in targets[known].unique().tolist():
            truth, guess = (targets == k) & known, (predicted == k) & known
            scores.append(2 * (truth & guess).sum().item() / (truth.sum() + guess.sum()).item())
        return float(np.mean(scores))
