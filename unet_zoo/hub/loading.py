"""The model a command's MODEL argument names: what `from_pretrained` takes, or an architecture with random weights.

Used by the CLI and by volume prediction's workers; from Python, use `unet_zoo.from_pretrained` (trained weights)
or `unet_zoo.create_model` (an architecture).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from unet_zoo.hub.pretrained import from_pretrained, is_path_like, unpublished_hint
from unet_zoo.models.registry import PRETRAINED, create_model, list_models
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.suggest import did_you_mean

logger = logging.getLogger(__name__)


def load_model(spec: str, device: str | torch.device | None = None) -> nn.Module:
    """The model a command's MODEL argument names, in eval mode, on `device` (default: CUDA if available, else CPU).

    `spec` is anything `unet_zoo.from_pretrained` takes (a checkpoint name, a folder written by ``save_pretrained``
    or ``unet-zoo train``, a Hub id "owner/repo"), or a registered architecture name (``unet_zoo.list_models()``),
    built with random weights (a warning is logged: its predictions are meaningless until trained). A bare
    registered name always means the registry's entry, whatever folder of that name the working directory holds;
    write ``./name`` for the folder.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("model spec must be a non-empty string: a checkpoint name, folder, Hub id or architecture")
    architectures = list_models()
    if spec in architectures and spec not in PRETRAINED and not is_path_like(spec):
        logger.warning(
            "%r is an architecture name, not a checkpoint: its weights are random and its predictions "
            "are meaningless. Pass a checkpoint name (unet_zoo.list_pretrained()), folder or Hub id.",
            spec,
        )
        model = create_model(spec)
    elif spec in PRETRAINED or is_path_like(spec) or Path(spec).expanduser().is_dir() or "/" in spec:
        model = from_pretrained(spec)
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
