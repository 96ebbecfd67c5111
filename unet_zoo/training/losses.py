"""The paper's loss: a pixel-wise softmax over the class logits combined with a weighted cross-entropy.

    E = sum_x w(x) * -log p_{l(x)}(x)        (Ronneberger et al. 2015, eq. 1)

We return the *mean* over pixels, i.e. the weighted sum divided by the number of pixels N*H*W (not by
the sum of the weights), so the loss scale and hence the learning rate do not depend on the tile size
or batch size. With all weights 1 this is exactly `torch.nn.functional.cross_entropy`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Reduction = Literal["mean", "sum", "none"]


def _check(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> None:
    if logits.ndim != 4:
        raise ValueError(f"logits must be (N, C, H, W), got shape {tuple(logits.shape)}")
    n, _, h, w = logits.shape
    if target.shape != (n, h, w):
        raise ValueError(
            f"target must be (N, H, W) = {(n, h, w)} to match logits {tuple(logits.shape)}, got {tuple(target.shape)}; "
            "for a valid-convolution model crop the labels to the output size (see unet_zoo.models.sizes.output_size)"
        )
    if target.dtype != torch.int64:
        raise TypeError(f"target must hold int64 class indices, got {target.dtype}; use target.long()")
    if weight is not None and weight.shape != (n, h, w):
        raise ValueError(f"weight must be (N, H, W) = {(n, h, w)}, got {tuple(weight.shape)}")


def weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Pixel-wise softmax + weighted cross-entropy (paper eq. 1).

    Args:
        logits: (N, C, H, W) float class scores (any float dtype; computed in float32).
        target: (N, H, W) int64 class index per pixel, in [0, C).
        weight: (N, H, W) float per-pixel weight w(x) (e.g. `unet_zoo.data.weight_maps.weight_map`), or None for 1.
        reduction: "mean" (weighted sum / (N*H*W) pixels), "sum", or "none" ((N, H, W) per-pixel loss).

    Returns:
        A float32 scalar (or (N, H, W) for ``reduction="none"``), in nats.
    """
    _check(logits, target, weight)
    per_pixel = F.cross_entropy(logits.float(), target, reduction="none")
    if weight is not None:
        per_pixel = per_pixel * weight.float()
    if reduction == "none":
        return per_pixel
    if reduction == "sum":
        return per_pixel.sum()
    if reduction == "mean":
        return per_pixel.mean()
    raise ValueError(f"unknown reduction {reduction!r}; choose 'mean', 'sum' or 'none'")


class WeightedCrossEntropy(nn.Module):
    """`weighted_cross_entropy` as a module: ``loss(logits, target, weight)``."""

    def __init__(self, reduction: Reduction = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return weighted_cross_entropy(logits, target, weight, self.reduction)


__all__ = ["weighted_cross_entropy", "WeightedCrossEntropy"]
