"""The U-Net of Ronneberger et al. (2015), with "same" padding and normalisation.

Batch normalisation is the default because, in eval mode, it is a per-pixel affine map:
a tile then predicts exactly what the whole image would, which overlap-tile prediction needs.
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn

from .checks import whole_number
from .errors import UNetError

MAX_CHANNELS = 256
MAX_DEEPEST = 2048
"""Bounds that keep a (possibly crafted) config from asking for gigabytes of weights."""


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net: channels in, classes out, depth and base width."""

    in_channels: int = 1
    n_classes: int = 2
    depth: int = 3
    width: int = 16
    norm: str = "batch"

    def __post_init__(self):
        for name, low, high in (
            ("in_channels", 1, MAX_CHANNELS),
            ("n_classes", 2, MAX_CHANNELS),
            ("depth", 1, 6),
            ("width", 1, 256),
        ):
            value = whole_number(f"U-Net's {name}", getattr(self, name), low, high)
            object.__setattr__(self, name, value)
        if self.width * 2**self.depth > MAX_DEEPEST:
            raise UNetError(
                f"width {self.width} at depth {self.depth} gives {self.width * 2**self.depth} "
                f"channels at the bottom; at most {MAX_DEEPEST} are supported"
            )
        if self.norm not in ("batch", "none"):
            raise UNetError(f"norm must be 'batch' or 'none', not {self.norm!r}")

    @property
    def multiple(self) -> int:
        """Height and width of an input must be multiples of this."""
        return 2**self.depth

    def to_dict(self) -> dict:
        return asdict(self)


class DoubleConv(nn.Sequential):
    """(3x3 convolution => [BN] => ReLU) * 2"""

    def __init__(self, cin: int, cout: int, norm: str):
        layers: list[nn.Module] = []
        for c in (cin, cout):
            layers.append(nn.Conv2d(c, cout, 3, padding=1, bias=norm == "none"))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class Down(nn.Sequential):
    """2x2 max pooling => double convolution"""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout, norm))


class Up(nn.Module):
    """2x2 transposed convolution => concatenation with the skip => double convolution"""

    def __init__(self, cin: int, cout: int, norm: str):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 2, stride=2)
        self.conv = DoubleConv(2 * cout, cout, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Contracting path, expansive path with skip connections, 1x1 convolution to classes."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        widths = [config.width * 2**i for i in range(config.depth + 1)]
        self.inc = DoubleConv(config.in_channels, widths[0], config.norm)
        self.downs = nn.ModuleList(
            Down(a, b, config.norm) for a, b in zip(widths, widths[1:], strict=False)
        )
        self.ups = nn.ModuleList(
            Up(b, a, config.norm) for a, b in reversed(list(zip(widths, widths[1:], strict=False)))
        )
        self.outc = nn.Conv2d(widths[0], config.n_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)
