"""A trained U-Net with what prediction needs to know: classes, channels, normalisation."""

import copy
import dataclasses
from dataclasses import dataclass, field

import torch

from .annotations import default_class_names
from .checks import Bound
from .errors import UNetError
from .images import Normalization
from .model import UNet, UNetConfig

NEW_CLASS_BIAS = -10.0
"""The starting bias of a class added by fine-tuning: its probability starts near zero."""


OBJECT_DIAMETER = Bound("object diameter (pixels)", float, 1, 10000)

MAX_CLASS_NAME = 60
"""Characters a class name may have (it becomes part of layer and file names)."""


def check_class_names(names) -> list[str] | None:
    """``names`` as a list of texts (None stays None), or a UNetError."""
    if names is None:
        return None
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise UNetError(f"class names must be a list of texts, not {str(names)[:80]}")
    for name in names:
        if not name.strip() or len(name) > MAX_CLASS_NAME or not name.isprintable():
            shown = name if len(name) <= MAX_CLASS_NAME else name[:MAX_CLASS_NAME] + "..."
            raise UNetError(
                f"class name {shown!r} must be 1 to {MAX_CLASS_NAME} printable characters"
            )
    return list(names)


@dataclass
class Segmenter:
    """A U-Net plus its class names (index i is annotation id i + 1) and normalisation;
    ``object_diameter`` (pixels), when set, is the object size it segments best: images are
    rescaled to it (:mod:`.object_size`)."""

    net: UNet
    class_names: list[str]
    normalization: Normalization = field(default_factory=Normalization)
    history: list[dict] = field(default_factory=list)
    object_diameter: float | None = None

    @classmethod
    def new(
        cls, config: UNetConfig, class_names: list[str] | None = None, seed: int | None = 0
    ) -> "Segmenter":
        """An untrained segmenter."""
        if seed is not None:
            torch.manual_seed(seed)
        names = check_class_names(class_names) or default_class_names(config.n_classes)
        if len(names) != config.n_classes:
            raise UNetError(f"{len(names)} class names for {config.n_classes} classes")
        return cls(UNet(config).eval(), names)

    @property
    def config(self) -> UNetConfig:
        return self.net.config

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    def with_classes(self, class_names: list[str]) -> "Segmenter":
        """A copy that also predicts the classes named after its own in ``class_names``: the
        output layer grows, the new classes' weights start at zero and their bias far below
        the others (NEW_CLASS_BIAS), so that the old classes predict as before until trained."""
        grown = copy.deepcopy(self)
        n = len(class_names)
        if n <= self.n_classes:
            return grown
        old = grown.net.outc
        new = torch.nn.Conv2d(old.in_channels, n, 1)
        with torch.no_grad():
            new.weight.zero_()
            new.bias.fill_(NEW_CLASS_BIAS)
            new.weight[: old.out_channels] = old.weight
            new.bias[: old.out_channels] = old.bias
        grown.net.outc = new
        grown.net.config = dataclasses.replace(grown.net.config, n_classes=n)
        grown.class_names = list(self.class_names) + list(class_names[self.n_classes :])
        return grown

    def summary(self) -> list[str]:
        """Three short lines: architecture, classes, training rounds."""
        c = self.config
        channels = "channel" if c.in_channels == 1 else "channels"
        return [
            f"U-Net depth {c.depth}, width {c.width}, {c.in_channels} {channels}",
            f"Classes: {', '.join(self.class_names)}",
            f"Trained {len(self.history)} round(s)",
        ]

    def describe(self) -> str:
        """The summary in one line."""
        return "; ".join(self.summary())

    def rounds(self) -> list[str]:
        """One line per training round: steps, seconds, device and validation Dice."""
        lines = []
        for i, entry in enumerate(self.history, start=1):
            dice = entry.get("validation_dice")
            dice = f", validation dice {dice:.3f}" if isinstance(dice, int | float) else ""
            steps, seconds = entry.get("steps", "?"), entry.get("seconds", "?")
            lines.append(
                f"round {i}: {steps} steps in {seconds} s on {entry.get('device', '?')}{dice}"
            )
        return lines
