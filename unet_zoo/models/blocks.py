"""Shared building blocks of every U-Net in the zoo.

All blocks work on tensors of shape (N, C, H, W). Sizes are in pixels.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

UpMode = Literal["transpose", "bilinear"]
NormKind = Literal["none", "batch", "group", "instance"]


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """Return a normalisation layer for `channels` feature maps (`Identity` for "none")."""
    if kind in ("none", None):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(32, channels), channels)
    raise ValueError(f"unknown norm {kind!r}; choose one of 'none', 'batch', 'group', 'instance'")


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by (optional norm and) ReLU.

    With ``padding=0`` (the paper) every convolution trims 1 pixel per side, so H and W shrink by 4.
    With ``padding=1`` the spatial size is kept.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: int = 0, norm: NormKind = "none"):
        use_bias = norm in ("none", None)
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=padding, bias=use_bias),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=padding, bias=use_bias),
            make_norm(norm, out_channels),
            nn.ReLU(inplace=True),
        )


def center_crop(features: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Crop the centre (height, width) window of (N, C, H, W) `features` (the paper's crop before concat)."""
    h, w = features.shape[-2:]
    if height > h or width > w:
        raise ValueError(f"cannot crop {h}x{w} features to a larger {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return features[..., top : top + height, left : left + width]


class UpBlock(nn.Module):
    """Expansive-path step: up-sample x2 halving the channels, crop-and-concat the skip, DoubleConv.

    ``up_mode="transpose"`` is the paper's 2x2 up-convolution; ``"bilinear"`` up-samples and then
    halves the channels with a 1x1 convolution (no checkerboard artefacts, fewer parameters).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        padding: int = 0,
        up_mode: UpMode = "transpose",
        norm: NormKind = "none",
    ):
        super().__init__()
        half = in_channels // 2
        if up_mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(in_channels, half, kernel_size=2, stride=2)
        elif up_mode == "bilinear":
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, half, kernel_size=1),
            )
        else:
            raise ValueError(f"unknown up_mode {up_mode!r}; choose 'transpose' or 'bilinear'")
        self.conv = DoubleConv(half + half, out_channels, padding=padding, norm=norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        skip = center_crop(skip, x.shape[-2], x.shape[-1])
        return self.conv(torch.cat([skip, x], dim=1))


def fan_in(module: nn.Module) -> int:
    """Number of inputs feeding one output unit of a (transposed) convolution or linear layer."""
    if isinstance(module, nn.ConvTranspose2d):
        # Each output pixel of a stride-s, kernel-s transposed conv sees exactly one tap per input channel.
        taps = math.prod(k // s for k, s in zip(module.kernel_size, module.stride)) or 1
        return module.in_channels // module.groups * taps
    if isinstance(module, nn.Conv2d):
        return module.in_channels // module.groups * math.prod(module.kernel_size)
    if isinstance(module, nn.Linear):
        return module.in_features
    raise TypeError(f"no fan-in rule for {type(module).__name__}")


@torch.no_grad()
def paper_init_(model: nn.Module) -> nn.Module:
    """The paper's initialisation, in place: weights ~ N(0, sqrt(2/N)), N = fan-in; biases 0."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            module.weight.normal_(0.0, math.sqrt(2.0 / fan_in(module)))
            if module.bias is not None:
                module.bias.zero_()
    return model
