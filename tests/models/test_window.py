"""The window of a same-size U-Net's output, computed alone, equals the same window of the whole output."""

from __future__ import annotations

import itertools

import pytest
import torch

from unet_zoo.models.unet import UNet
from unet_zoo.models.window import WindowedLogits, supports_window
from unet_zoo.utils.timing import count_forward_flops

MARGINS = [(0, 0, 0, 0), (1, 2, 3, 4), (7, 9, 5, 0), (20, 17, 33, 31), (13, 0, 0, 13)]


def _model(up_mode: str, norm: str) -> UNet:
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=3, padding=1, up_mode=up_mode, norm=norm).eval()  # type: ignore[arg-type]
    for module in model.modules():  # batch norm statistics that are not the identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    return model


@pytest.mark.parametrize(("up_mode", "norm"), list(itertools.product(["transpose", "bilinear"], ["none", "batch"])))
def test_the_window_equals_the_whole_outputs_window(up_mode, norm):
    model = _model(up_mode, norm)
    x = torch.rand(2, 1, 96, 112)
    with torch.no_grad():
        whole = model(x)
        for top, bottom, left, right in MARGINS:
            window = model(x, margins=(top, bottom, left, right))
            expected = whole[..., top : 96 - bottom, left : 112 - right]
            assert window.shape == expected.shape
            torch.testing.assert_close(window, expected, atol=2e-6, rtol=0)


def test_the_window_costs_fewer_operations_and_refuses_what_it_cannot_compute():
    model = _model("transpose", "none")
    whole = count_forward_flops(model, (1, 1, 96, 96))
    window = count_forward_flops(WindowedLogits(model, (20, 20, 20, 20)).eval(), (1, 1, 96, 96))
    assert window < 0.9 * whole
    assert count_forward_flops(WindowedLogits(model, (0, 0, 0, 0)).eval(), (1, 1, 96, 96)) == whole
    assert not supports_window(UNet(base_channels=4, depth=2, padding=0))  # valid convolutions crop themselves
    assert not supports_window(UNet(base_channels=4, depth=2, padding=1, norm="instance"))  # statistics of the tile
    with pytest.raises(ValueError, match="eval mode"):
        model.train()(torch.rand(1, 1, 64, 64), margins=(8, 8, 8, 8))
    with pytest.raises(ValueError, match=">= 0"):
        model.eval()(torch.rand(1, 1, 64, 64), margins=(-1, 8, 8, 8))
    with pytest.raises(ValueError, match="output window"):
        UNet(base_channels=4, depth=2, padding=0).eval()(torch.rand(1, 1, 188, 188), margins=(1, 1, 1, 1))
