"""The parameters of a segmentation (`SegmentationParams`) and their stored form (a checkpoint's ``segmentation`` block)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SegmentationParams:
    """How a probability map becomes cells; the defaults were tuned on a tuning fold (docs/segmentation.md).

    threshold: P(cell) above which a pixel counts as cell when the seeds are made.
    sigma: Gaussian smoothing (pixels) of the distance transform of those cells before its maxima are taken.
    min_distance: minimum distance (pixels) between two seeds in the same cell component.
    min_size: segments smaller than this (pixels) are dissolved into their neighbours; 0 keeps all.
    merge_threshold: neighbouring segments whose shared boundary has a mean P(membrane) below this are
        merged (hierarchically, lowest first); None skips the agglomeration.
    """

    # chosen on the tuning fold (benchmarks/segmentation_tuning.py tune; docs/segmentation.md)
    threshold: float = 0.6
    sigma: float = 3.0
    min_distance: int = 10
    min_size: int = 100
    merge_threshold: float | None = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1), got {self.threshold}")
        if self.sigma < 0:
            raise ValueError(f"sigma must be >= 0 pixels, got {self.sigma}")
        if int(self.min_distance) != self.min_distance or self.min_distance < 1:
            raise ValueError(f"min_distance must be a whole number of pixels >= 1, got {self.min_distance}")
        if int(self.min_size) != self.min_size or self.min_size < 0:
            raise ValueError(f"min_size must be a whole number of pixels >= 0, got {self.min_size}")
        if self.merge_threshold is not None and not 0.0 <= self.merge_threshold <= 1.0:
            raise ValueError(f"merge_threshold must be in [0, 1] or None (no agglomeration), got {self.merge_threshold}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a checkpoint's ``segmentation`` block."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationParams:
        """Read a ``segmentation`` block; unknown keys are an error (a typo would otherwise be ignored silently)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown segmentation parameters {unknown}; known: {sorted(names)}")
        return cls(**data)

    def coarser(self, factor: float) -> SegmentationParams:
        """The same segmentation on an image whose pixels are `factor` times larger (e.g. 2.0 for parameters
        tuned at 4 nm/px used at 8 nm/px): lengths divided by `factor`, areas by its square."""
        if factor <= 0:
            raise ValueError(f"factor must be > 0, got {factor}")
        if factor == 1.0:
            return self
        return dataclasses.replace(
            self,
            sigma=self.sigma / factor,
            min_distance=max(1, round(self.min_distance / factor)),
            min_size=round(self.min_size / factor**2),
        )

    def replace(self, **changes: Any) -> SegmentationParams:
        """A copy with `changes` applied (None values are ignored, except merge_threshold=None via `no_merge`)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


__all__ = ["SegmentationParams"]
