"""A trained U-Net with what prediction needs to know: classes, channels, normalisation."""

from dataclasses import dataclass, field

import torch

from .annotations import default_class_names
from .errors import UNetError
from .images import Normalization
from .model import UNet, UNetConfig


def check_class_names(names) -> list[str] | None:
    """``names`` as a list of texts (None stays None), or a UNetError."""
    if names is None:
        return None
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise UNetError(f"class names must be a list of texts, not {names!r}")
    return list(names)


@dataclass
class Segmenter:
    """A U-Net plus its class names (index i is annotation id i + 1) and normalisation."""

    net: UNet
    class_names: list[str]
    normalization: Normalization = field(default_factory=Normalization)
    history: list[dict] = field(default_factory=list)

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

    def describe(self) -> str:
        """One line: classes, channels and size."""
        c = self.config
        rounds = len(self.history)
        return (
            f"U-Net depth {c.depth}, width {c.width}; {c.in_channels} channel(s); "
            f"classes: {', '.join(self.class_names)}; trained {rounds} round(s)"
        )
