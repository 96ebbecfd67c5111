"""One door for "the model the user named": a checkpoint, a folder, a Hub id or an architecture."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from unet_zoo.hub.pretrained import from_pretrained, unpublished_hint
from unet_zoo.models.registry import PRETRAINED, create_model, list_models
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.suggest import did_you_mean

logger = logging.getLogger(__name__)


def load_model(spec: str, device: str | torch.device | None = None) -> nn.Module:
    """Load the model `spec` names, in eval mode, on `device` (default: CUDA if available, else CPU).

    `spec` may be a published checkpoint name (``unet_zoo.list_pretrained()``), a local folder written
    by ``save_pretrained``, a Hugging Face Hub id ("owner/repo"), all loaded with
    ``unet_zoo.hub.pretrained.from_pretrained``; or a registered architecture name (``unet_zoo.list_models()``),
    built with random weights (a warning is logged: its predictions are meaningless until trained).
    """
    architectures = list_models()
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("model spec must be a non-empty string: a checkpoint name, folder, Hub id or architecture")
    if spec in PRETRAINED or Path(spec).expanduser().is_dir() or (spec not in architectures and "/" in spec):
        model = from_pretrained(spec)
    elif spec in architectures:
        logger.warning(
            "%r is an architecture name, not a checkpoint: its weights are random and its predictions "
            "are meaningless. Pass a checkpoint name (unet_zoo.list_pretrained()), folder or Hub id.",
            spec,
        )
        model = create_model(spec)
    else:
        unpublished = unpublished_hint(spec)  # a recipe's checkpoint name (isbi-original) not published yet
        known = list(PRETRAINED) + architectures
        hint = unpublished or did_you_mean(spec, known)
        raise ValueError(
            f"{spec!r} is neither a checkpoint, a folder, a Hub id (owner/repo) nor a registered architecture.{hint} "
            f"Known names: {', '.join(known)}"
        )
    return model.to(resolve_device(device)).eval()


__all__ = ["load_model"]
