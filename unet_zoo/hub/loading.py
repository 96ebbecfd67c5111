"""Deprecated: `load_model`, kept for one release. Use `unet_zoo.from_pretrained` (trained weights) or
`unet_zoo.create_model` (an architecture with random weights).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from unet_zoo.hub.factory import from_pretrained
from unet_zoo.utils.device import resolve_device


def load_model(spec: str, device: str | torch.device | None = None) -> nn.Module:
    """Deprecated: ``unet_zoo.from_pretrained(spec, device=...)``. As before, `device` defaults to CUDA when
    available and an architecture name gives random weights (with a warning)."""
    warnings.warn(
        "unet_zoo.hub.loading.load_model is deprecated and will be removed in the next release; use "
        "unet_zoo.from_pretrained(source, device=...) for trained weights or unet_zoo.create_model(name) for an "
        "architecture",
        FutureWarning,
        stacklevel=2,
    )
    return from_pretrained(spec, device=resolve_device(device), allow_architecture=True)


__all__ = ["load_model"]
