import math

import pytest
import torch
from torch import nn

from unet_zoo.models.blocks import DoubleConv, UpBlock, center_crop, fan_in, make_norm, paper_init_


def test_double_conv_valid_shrinks_by_four():
    block = DoubleConv(1, 8, padding=0)
    assert block(torch.zeros(2, 1, 20, 24)).shape == (2, 8, 16, 20)


def test_double_conv_padded_keeps_size():
    block = DoubleConv(3, 8, padding=1, norm="batch")
    assert block(torch.zeros(2, 3, 20, 24)).shape == (2, 8, 20, 24)


def test_center_crop_takes_middle():
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert torch.equal(center_crop(x, 2, 2), x[..., 2:4, 2:4])
    with pytest.raises(ValueError, match="larger"):
        center_crop(x, 8, 8)


@pytest.mark.parametrize("mode", ["transpose", "bilinear"])
def test_up_block_crops_and_concatenates(mode):
    block = UpBlock(16, 8, padding=0, up_mode=mode)
    deep, skip = torch.zeros(1, 16, 6, 6), torch.zeros(1, 8, 20, 20)
    # up: 6 -> 12, skip cropped 20 -> 12, two valid convs: 12 -> 8
    assert block(deep, skip).shape == (1, 8, 8, 8)


def test_unknown_options_raise():
    with pytest.raises(ValueError, match="up_mode"):
        UpBlock(8, 4, up_mode="nearest")
    with pytest.raises(ValueError, match="norm"):
        make_norm("layer", 4)


def test_fan_in_rules():
    assert fan_in(nn.Conv2d(4, 8, 3)) == 36
    assert fan_in(nn.ConvTranspose2d(16, 8, 2, stride=2)) == 16
    assert fan_in(nn.Linear(5, 2)) == 5


def test_paper_init_std_matches_sqrt_2_over_fan_in():
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 128, 3)
    paper_init_(conv)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.02)
    assert torch.count_nonzero(conv.bias) == 0
    up = nn.ConvTranspose2d(256, 128, 2, stride=2)
    paper_init_(up)
    assert up.weight.std().item() == pytest.approx(math.sqrt(2 / 256), rel=0.02)
