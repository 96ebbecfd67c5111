"""Named data sources: labelled stacks that a recipe's ``[data] source`` names.

A dataset registers a loader under its name (the ISBI 2012 experiment registers ``"isbi2012"``,
`unet_zoo.experiments.isbi2012.data`); the trainer asks for the stack by that name, so it needs to know neither
where the data lives nor how it is checked::

    stack = load_source("isbi2012", data_dir=None)   # images (S, H, W) uint8, labels 1 = cell
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LabelledStack:
    """A labelled stack from a named source.

    images: (S, H, W) uint8 EM sections; labels: (S, H, W) uint8, 1 = cell, 0 = membrane;
    description: the source in words for the model card ("ISBI 2012 (/data/isbi2012)");
    pixel_size: nm per pixel, or None when not known.
    """

    images: np.ndarray
    labels: np.ndarray
    description: str
    pixel_size: float | None = None


SourceLoader = Callable[[str | Path | None], LabelledStack]
"""loader(data_dir or None) -> LabelledStack; raises FileNotFoundError (saying where to put what) for missing data."""

_SOURCES: dict[str, SourceLoader] = {}
_CARD_FIELDS: dict[str, dict[str, Any]] = {}


def register_source(name: str, loader: SourceLoader, card_fields: dict[str, Any] | None = None) -> None:
    """Make `loader` the source a recipe names as ``[data] source = name`` (a later registration replaces it).

    card_fields: what the model card of a checkpoint trained on this source says beside its scores
    (`unet_zoo.hub.card.CardInfo` fields, e.g. the ``reference_scores`` it is compared with).
    """
    _SOURCES[name] = loader
    _CARD_FIELDS[name] = dict(card_fields or {})


def source_card_fields(name: str) -> dict[str, Any]:
    """The card fields source `name` was registered with; {} for a source registered without or not at all."""
    return dict(_CARD_FIELDS.get(name, {}))


def source_names() -> list[str]:
    """The registered source names, sorted."""
    return sorted(_SOURCES)


def load_source(name: str, data_dir: str | Path | None = None) -> LabelledStack:
    """The stack of source `name`, read from `data_dir` (None: the source's own default folder).

    Raises ValueError naming the registered sources for an unknown name.
    """
    if name not in _SOURCES:
        known = ", ".join(source_names()) or "none"
        raise ValueError(f"unknown data source {name!r}; registered sources: {known}")
    return _SOURCES[name](data_dir)


__all__ = ["LabelledStack", "SourceLoader", "load_source", "register_source", "source_card_fields", "source_names"]
