"""The U-Net architectures: one configurable `UNet` (the paper's and its variants) and `TimmUNet`.

Variants are configurations of these classes, registered in `unet_zoo.models.registry`; no code is copied
between variants. Inputs are float tensors (N, C, H, W); outputs are logits (N, num_classes, H', W').
Both are plain `torch.nn.Module`s that record their constructor arguments in ``init_args``; saving and loading
are the Hub layer's functions (``unet_zoo.save_pretrained``, ``unet_zoo.from_pretrained``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from unet_zoo.models.blocks import DoubleConv, NormKind, UpBlock, UpMode, center_crop, paper_init_
from unet_zoo.models.legacy import LegacyHubMethods
from unet_zoo.models.sizes import is_valid_input_size, nearest_valid_sizes_text, output_size, size_rule
from unet_zoo.models.window import Margins, window_logits


def check_input(x: Any, in_channels: int, name: str) -> None:
    """Raise a clear TypeError/ValueError unless `x` is a float (N, in_channels, H, W) tensor."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor of shape (N, {in_channels}, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        hint = " (add a batch axis with x[None])" if x.ndim == 3 else ""
        raise ValueError(f"{name} expects a 4-D tensor (N, {in_channels}, H, W), got shape {tuple(x.shape)}{hint}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} expects a floating-point tensor, got {x.dtype}; convert it, e.g. x.float() / 255 for uint8 images"
        )
    if x.shape[1] != in_channels:
        raise ValueError(f"{name} expects {in_channels} input channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")


class UNet(LegacyHubMethods, nn.Module):
    """U-Net of Ronneberger et al. (2015), configurable.

    Args:
        in_channels: channels of the input image (1 for EM).
        num_classes: output channels (per-pixel class logits).
        base_channels: feature maps at the first level; doubled at every level down (64 -> 1024).
        depth: number of 2x2 max-pooling steps (4 in the paper).
        padding: 0 for the paper's valid convolutions (572 -> 388), 1 to keep the size.
        up_mode: "transpose" (2x2 up-convolution, paper) or "bilinear".
        norm: "none" (paper), "batch", "group" or "instance".
        dropout: dropout probability at the end of the contracting path (paper: 0.5).
        init: "paper" (Gaussian, std sqrt(2/fan_in)) or "default" (PyTorch's).
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        base_channels: int = 64,
        depth: int = 4,
        padding: int = 0,
        up_mode: UpMode = "transpose",
        norm: NormKind = "none",
        dropout: float = 0.5,
        init: str = "paper",
    ):
        super().__init__()
        self.init_args: dict[str, Any] = dict(
            in_channels=in_channels,
            num_classes=num_classes,
            base_channels=base_channels,
            depth=depth,
            padding=padding,
            up_mode=up_mode,
            norm=norm,
            dropout=dropout,
            init=init,
        )
        if padding not in (0, 1):
            raise ValueError(f"padding must be 0 (valid convolutions) or 1 (same size), got {padding}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.in_channels, self.num_classes = in_channels, num_classes
        self.depth, self.padding = depth, padding
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            DoubleConv(c_in, c_out, padding, norm) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)
        )
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.decoder = nn.ModuleList(
            UpBlock(c_in, c_out, padding, up_mode, norm) for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])
        )
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        if init == "paper":
            paper_init_(self)
        elif init != "default":
            raise ValueError(f"unknown init {init!r}; choose 'paper' or 'default'")

    def output_size(self, input_size: int) -> int | None:
        """Output side length (pixels) for an input side length, or None if unusable."""
        return output_size(input_size, self.depth, self.padding)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless `x` is a float (N, C, H, W) tensor of a usable size."""
        check_input(x, self.in_channels, type(self).__name__)
        for axis, size in zip(("height", "width"), x.shape[-2:]):
            if not is_valid_input_size(size, self.depth, self.padding):
                raise ValueError(
                    f"input {axis} {size} is not usable ({size_rule(self.depth, self.padding)}); "
                    f"nearest usable sizes: {nearest_valid_sizes_text(size, self.depth, self.padding)}. "
                    "Crop or mirror-pad the input, or use unet_zoo.predict_tiled for images of any size."
                )

    def contract(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The contracting path: the feature maps of every level, full resolution first, the deepest last."""
        features = []
        for level, block in enumerate(self.encoder):
            if level:
                x = self.pool(x)
            x = block(x)
            features.append(x)
        return features

    @property
    def computes_windows(self) -> bool:
        """Whether ``forward(x, margins=...)`` can compute a window of the output alone (`unet_zoo.models.window`):
        padded convolutions and per-pixel normalisation (none, or batch norm in eval mode)."""
        return self.padding == 1 and self.init_args["norm"] in ("none", "batch")

    def forward(self, x: torch.Tensor, margins: Margins | None = None) -> torch.Tensor:
        """(N, in_channels, H, W) float -> (N, num_classes, H', W') logits; H' = H for padded models.

        `margins` (top, bottom, left, right px; models that `computes_windows`, in eval mode): only the output
        without them, (N, num_classes, H - top - bottom, W - left - right), computing what that window needs."""
        self.check_input(x)
        if margins is not None:
            if not self.computes_windows:
                raise ValueError("only padded U-Nets with per-pixel normalisation compute an output window")
            return window_logits(self, x, margins)
        skips = self.contract(x)
        x = self.dropout(skips.pop())
        for block in self.decoder:
            x = block(x, skips.pop())
        return self.head(x)


class TimmUNet(LegacyHubMethods, nn.Module):
    """U-Net whose contracting path is any timm backbone (``features_only=True``).

    The expansive path up-samples bilinearly, concatenates the encoder features of the same stride
    and applies a padded `DoubleConv`; the logits are up-sampled to the input size.
    Inputs: (N, in_channels, H, W) float with H, W multiples of the backbone's largest stride (usually 32).
    """

    def __init__(
        self,
        encoder: str = "resnet34",
        in_channels: int = 1,
        num_classes: int = 2,
        decoder_channels: tuple[int, ...] | list[int] = (256, 128, 64, 32),
        norm: NormKind = "batch",
        pretrained_encoder: bool = False,
    ):
        super().__init__()
        self.init_args: dict[str, Any] = dict(
            encoder=encoder,
            in_channels=in_channels,
            num_classes=num_classes,
            decoder_channels=list(decoder_channels),
            norm=norm,
            pretrained_encoder=pretrained_encoder,
        )
        import timm  # imported here: timm (and torchvision) are only needed for these models

        if not isinstance(encoder, str) or ":" in encoder or "/" in encoder or not timm.is_model(encoder):
            raise ValueError(
                f"encoder {encoder!r} is not a timm architecture name (see timm.list_models()); Hub ('hf-hub:...') "
                "and local-dir encoders are not accepted, so building a model never reads files or the network"
            )
        self.in_channels, self.num_classes, self.encoder_name = in_channels, num_classes, encoder
        self.encoder = timm.create_model(encoder, features_only=True, pretrained=pretrained_encoder, in_chans=in_channels)
        channels = self.encoder.feature_info.channels()
        self.reductions = self.encoder.feature_info.reduction()
        decoder_channels = list(decoder_channels)[: len(channels) - 1]
        if len(decoder_channels) < len(channels) - 1:
            raise ValueError(f"need {len(channels) - 1} decoder widths for {encoder}, got {len(decoder_channels)}")
        self.decoder = nn.ModuleList()
        deep = channels[-1]
        for skip, width in zip(channels[-2::-1], decoder_channels):
            self.decoder.append(DoubleConv(deep + skip, width, padding=1, norm=norm))
            deep = width
        self.head = nn.Conv2d(deep, num_classes, kernel_size=1)

    @property
    def stride(self) -> int:
        """Largest down-sampling factor of the backbone: H and W must be multiples of it."""
        return max(self.reductions)

    def output_size(self, input_size: int) -> int | None:
        """Output side (= input side) or None if `input_size` is not a multiple of the stride."""
        return input_size if input_size % self.stride == 0 else None

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless `x` is a float (N, C, H, W) tensor with H, W multiples of the stride."""
        check_input(x, self.in_channels, f"TimmUNet({self.encoder_name})")
        for axis, size in zip(("height", "width"), x.shape[-2:]):
            if size % self.stride:
                below, above = size - size % self.stride, size + self.stride - size % self.stride
                options = f"{below} or {above}" if below else str(above)
                raise ValueError(
                    f"input {axis} {size} is not a multiple of {self.stride}, the stride of {self.encoder_name}; "
                    f"nearest usable sizes: {options}. Crop or mirror-pad the input, "
                    "or use unet_zoo.predict_tiled for images of any size."
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) float -> (N, num_classes, H, W) logits."""
        self.check_input(x)
        size = x.shape[-2:]
        features = self.encoder(x)
        y = features[-1]
        for block, skip in zip(self.decoder, features[-2::-1]):
            y = nn.functional.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([skip, y], dim=1))
        y = self.head(y)
        if y.shape[-2:] != size:
            y = nn.functional.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return y


__all__ = ["UNet", "TimmUNet", "check_input", "center_crop"]
