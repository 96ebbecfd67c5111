"""`segment`: a probability map (or an image and a model) -> a label image of cells."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.models.provenance import provenance_of
from unet_zoo.segmentation.agglomerate import merge_segments
from unet_zoo.segmentation.watershed import dissolve_small, distance_seeds, flood
from unet_zoo.utils.segmentation_params import SegmentationParams, SegmentationParamsError


def checkpoint_params(model: nn.Module | None) -> SegmentationParams:
    """The segmentation defaults stored with a checkpoint (config.json: ``pretrained.segmentation``), else the
    library's defaults (`SegmentationParams()`, tuned on a tuning fold)."""
    record = provenance_of(model) if model is not None else None
    stored = record.segmentation if record is not None else None
    if not stored:
        return SegmentationParams()
    try:
        return SegmentationParams.from_dict(stored)
    except SegmentationParamsError as err:
        source = record.label if record is not None else "the model"
        raise SegmentationParamsError(
            f"{source}: bad segmentation defaults in config.json's 'pretrained.segmentation' ({err}); fix or remove that block"
        ) from None


def _cell_and_membrane(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) softmax probabilities (C >= 2) or a (H, W) P(cell) map -> P(cell), P(membrane), both (H, W) float32."""
    prob = np.asarray(probabilities)
    if prob.dtype.kind != "f":
        raise TypeError(f"probabilities must be floats in [0, 1], got dtype {prob.dtype}; divide uint8 maps by 255")
    if prob.ndim == 3 and prob.shape[0] >= 2:
        cell, membrane = prob[1], prob[0]
    elif prob.ndim == 2:
        cell = prob
        membrane = 1.0 - prob
    else:
        raise ValueError(
            f"probabilities must be (C, H, W) with C >= 2 (channel 0 = membrane, 1 = cell, as predict_tiled "
            f"returns) or a (H, W) P(cell) map; got shape {prob.shape}. For an image, pass the model too"
        )
    if prob.size and (np.isnan(prob).any() or prob.min() < 0 or prob.max() > 1):
        raise ValueError("probabilities must lie in [0, 1] without NaNs; apply softmax first")
    return cell.astype(np.float32, copy=False), membrane.astype(np.float32, copy=False)


def segment_probabilities(probabilities: np.ndarray, params: SegmentationParams | None = None) -> np.ndarray:
    """Cells of one probability map -> (H, W) uint32 labels 1..N (every pixel belongs to a cell, IDs consecutive).

    `probabilities`: (C, H, W) softmax output (channel 0 = P(membrane), 1 = P(cell)) or a (H, W) P(cell) map
    (then P(membrane) = 1 - P(cell)). Seeds from the smoothed distance transform of P(cell) > threshold,
    watershed of P(membrane), small segments dissolved, then (if merge_threshold is set) neighbours merged
    while their shared boundary's mean P(membrane) is below merge_threshold.
    """
    p = params or SegmentationParams()
    cell, membrane = _cell_and_membrane(probabilities)
    markers = distance_seeds(cell, p.threshold, p.sigma, p.min_distance)
    labels = flood(membrane, markers)
    if p.min_size > 0:
        labels = dissolve_small(labels, membrane, p.min_size)
    if p.merge_threshold is not None:
        labels = merge_segments(labels, membrane, p.merge_threshold)
    return labels.astype(np.uint32)


MAX_ID = int(np.iinfo(np.uint32).max)


def offset_ids(labels: np.ndarray, offset: int, where: str = "the stack") -> np.ndarray:
    """One section's (H, W) labels 1..n moved past the `offset` IDs of the sections before it, so IDs stay unique
    across a stack or volume: uint32 ``labels + offset``. OverflowError naming `where` when uint32 runs out."""
    cells = int(labels.max(initial=0))
    if offset + cells > MAX_ID:
        raise OverflowError(f"more than {MAX_ID} cells in {where}: uint32 IDs run out")
    return labels.astype(np.uint32, copy=False) + np.uint32(offset)


class UniqueIds:
    """Numbers cells across a stack: each section's IDs 1..n are moved past those of the sections before it
    (`offset_ids`). ``ids(labels)`` returns the section's labels so numbered."""

    def __init__(self, where: str = "the stack", start: int = 0) -> None:
        self.next, self.where = start, where

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        numbered = offset_ids(labels, self.next, self.where)
        self.next = int(numbered.max(initial=self.next))
        return numbered


def segment_stack(
    probabilities: np.ndarray,
    params: SegmentationParams | None = None,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Cells of a (H, W) P(cell) map or a (S, H, W) stack of them (what ``unet-zoo predict`` writes): (H, W) or
    (S, H, W) uint32 labels, IDs unique across the stack. `progress(section)` after each section."""
    prob = np.asarray(probabilities)
    sections = prob if prob.ndim == 3 else prob[None]
    ids = UniqueIds()
    parts = []
    for index, section in enumerate(sections):
        parts.append(ids(segment_probabilities(section.astype(np.float32), params)))
        if progress is not None:
            progress(index)
    return np.stack(parts) if prob.ndim == 3 else parts[0]


def segment(probabilities: np.ndarray, params: SegmentationParams | None = None, **overrides: Any) -> np.ndarray:
    """Cells of a probability map -> (H, W) uint32 label image (IDs 1..N): `segment_probabilities` with
    `params` (default `SegmentationParams()`) and single parameters changed by `overrides` (e.g.
    ``threshold=0.6`` or ``merge_threshold=None``). From an image and a model: `unet_zoo.segment` or
    `unet_zoo.Predictor.segment`.

    `probabilities`: the (C, H, W) probabilities `unet_zoo.Predictor.predict` returns (channel 0 = membrane,
    1 = cell) or a (H, W) P(cell) map. Every pixel belongs to a cell (there is no background label 0).
    """
    chosen = params or SegmentationParams()
    if overrides:
        chosen = dataclasses.replace(chosen, **overrides)
    return segment_probabilities(probabilities, chosen)


__all__ = [
    "MAX_ID",
    "UniqueIds",
    "checkpoint_params",
    "offset_ids",
    "segment",
    "segment_probabilities",
    "segment_stack",
]
