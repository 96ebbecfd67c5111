"""The parameters of a segmentation (`SegmentationParams`) and their stored form (a checkpoint's ``segmentation`` block).

They live with the utilities because the checkpoint loader (`unet_zoo.hub`) checks a checkpoint's stored block
before any work, below the segmentation package that uses them; `unet_zoo.segmentation` exports them too."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from unet_zoo.utils.errors import InputError


class SegmentationParamsError(InputError):
    """A segmentation parameter of the wrong type or outside `_BOUNDS` (NaN, infinite, negative, huge)."""


# (name, lowest, highest, whole number): finite values only; the upper bounds are far above any useful value
_BOUNDS: tuple[tuple[str, float, float, bool], ...] = (
    ("threshold", 0.0, 1.0, False),  # [0, 1)
    ("sigma", 0.0, 1000.0, False),
    ("min_distance", 1, 100_000, True),
    ("min_size", 0, 10**10, True),
    ("merge_threshold", 0.0, 1.0, False),
)


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

    # chosen on the tuning fold (studies/segmentation_tuning.py tune; docs/segmentation.md)
    threshold: float = 0.6
    sigma: float = 3.0
    min_distance: int = 10
    min_size: int = 100
    merge_threshold: float | None = 0.5

    def __post_init__(self) -> None:
        for name, low, high, whole in _BOUNDS:
            value = getattr(self, name)
            if name == "merge_threshold" and value is None:
                continue
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if (
                not number
                or not math.isfinite(value)
                or (whole and int(value) != value)
                or not low <= value <= high
                or (name == "threshold" and value == high)
            ):
                kind = "a whole number of pixels" if whole else "a number"
                upper = f"{high:g})" if name == "threshold" else f"{high:g}]"
                none = " or None (no agglomeration)" if name == "merge_threshold" else ""
                raise SegmentationParamsError(f"{name} must be in [{low:g}, {upper} ({kind}){none}, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored in a checkpoint's ``segmentation`` block."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentationParams:
        """Read a ``segmentation`` block; unknown keys are an error (a typo would otherwise be ignored silently)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict):
            raise SegmentationParamsError(f"a segmentation block must be a mapping of parameters, got {data!r}")
        unknown = sorted(set(data) - names)
        if unknown:
            raise SegmentationParamsError(f"unknown segmentation parameters {unknown}; known: {sorted(names)}")
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


__all__ = ["SegmentationParams", "SegmentationParamsError"]
