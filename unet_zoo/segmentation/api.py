"""`segment`: a probability map (or an image and a model) -> a label image of cells."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.inference.tiling import predict_tiled
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


def segment(
    data: np.ndarray,
    model: nn.Module | None = None,
    params: SegmentationParams | None = None,
    *,
    tta: bool = False,
    tile: int | None = None,
    batch_size: int = 4,
    device: Any = None,
    forward: Callable[[np.ndarray], np.ndarray] | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Segment cells: a probability map, or an image and a model -> (H, W) uint32 label image (IDs 1..N).

    Args:
        data: without `model`, the (C, H, W) probabilities `unet_zoo.predict_tiled` returns (channel 0 =
            membrane, 1 = cell) or a (H, W) P(cell) map; with `model`, the image (H, W) to predict first.
        model: a zoo model; its checkpoint's stored segmentation defaults are used unless `params` is given.
        params: the parameters (default: the checkpoint's, else `SegmentationParams()`).
        tta, tile, batch_size, device, forward: passed to `predict_tiled` when `model` is given.
        overrides: single parameters to change, e.g. ``threshold=0.6`` or ``merge_threshold=None``.

    Every pixel belongs to a cell (there is no background label 0); IDs are unique within the image.
    """
    chosen = params or checkpoint_params(model)
    if overrides:
        chosen = dataclasses.replace(chosen, **overrides)
    if model is not None:
        image = np.asarray(data)
        if image.dtype.kind == "f" and image.ndim == 3 and image.shape[0] == getattr(model, "num_classes", -1):
            raise ValueError(
                f"got a (C, H, W) float array {image.shape} and a model: pass either probabilities without a model "
                "or an image with one"
            )
        data = predict_tiled(model, image, tile=tile, batch_size=batch_size, device=device, tta=tta, forward=forward)
    return segment_probabilities(data, chosen)


__all__ = ["checkpoint_params", "segment", "segment_probabilities"]
