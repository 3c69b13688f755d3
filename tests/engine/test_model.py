import pytest
import torch

from napari_unet.engine.errors import UNetError
from napari_unet.engine.model import UNet, UNetConfig


@pytest.mark.parametrize(
    ("channels", "classes", "depth", "width"), [(1, 2, 1, 4), (3, 4, 2, 8), (2, 3, 4, 4)]
)
def test_output_has_one_map_per_class_at_input_size(channels, classes, depth, width):
    net = UNet(UNetConfig(channels, classes, depth, width)).eval()
    x = torch.randn(2, channels, 2**depth * 5, 2**depth * 3)
    assert net(x).shape == (2, classes, 2**depth * 5, 2**depth * 3)


def test_paper_architecture_widths_double_per_level():
    net = UNet(UNetConfig(depth=4, width=64))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == 64
    assert max(c.out_channels for c in convs) == 1024
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [u.kernel_size for u in ups] == [(2, 2)] * 4
    assert convs[-1].kernel_size == (1, 1)


def test_batch_norm_after_each_convolution_unless_turned_off():
    with_norm = UNet(UNetConfig(norm="batch"))
    without = UNet(UNetConfig(norm="none"))
    n_convs = sum(isinstance(m, torch.nn.Conv2d) for m in with_norm.modules()) - 1
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in with_norm.modules()) == n_convs
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in without.modules())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_classes": 1},
        {"in_channels": 0},
        {"depth": 0},
        {"depth": 7},
        {"norm": "group"},
        {"width": 0},
        {"width": 2.5},
        {"depth": True},
        {"width": "16"},
        {"width": 256, "depth": 6},
    ],
)
def test_invalid_configs_are_refused_with_a_clear_error(kwargs):
    with pytest.raises(UNetError, match="U-Net|norm|channels at the bottom"):
        UNetConfig(**kwargs)
