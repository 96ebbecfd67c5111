"""The widget's model drop-down: the registry's checkpoints with their held-out scores and size."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unet_zoo.models.info import count_params
from unet_zoo.models.registry import PRETRAINED, create_model, list_pretrained
from unet_zoo.runtime.measured import BACKENDS
from unet_zoo.runtime.settings import PRECISIONS

OTHER = "folder / Hub id..."


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the drop-down: the name `from_pretrained` takes and the text shown for it."""

    name: str
    label: str


def parameter_count(architecture: str) -> int:
    """Parameters of a registered architecture, counted on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return count_params(create_model(architecture))


def checkpoint_choices() -> list[ModelChoice]:
    """The published checkpoints (`unet_zoo.list_pretrained()`), labelled with their held-out V-Rand and
    V-Info (thinned, as the ISBI challenge scored) and their parameter count, e.g.
    ``isbi-small: V-Rand 0.982, V-Info 0.983, 7.8 M parameters``."""
    choices = []
    for name in list_pretrained():
        cfg = PRETRAINED[name]
        scores = [
            f"{shown} {cfg.metrics[key]:.3f}"
            for key, shown in (("vrand_thinned", "V-Rand"), ("vinfo_thinned", "V-Info"))
            if key in cfg.metrics
        ]
        size = f"{parameter_count(cfg.architecture) / 1e6:.1f} M parameters"
        choices.append(ModelChoice(name, f"{name}: {', '.join([*scores, size])}"))
    return choices


__all__ = ["BACKENDS", "OTHER", "PRECISIONS", "ModelChoice", "checkpoint_choices", "parameter_count"]
