"""`unet_zoo.segment`: cells from probabilities, or from an image (any kind `Predictor` reads) and a model."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.pipeline.predictor import Predictor
from unet_zoo.segmentation import SegmentationParams, checkpoint_params
from unet_zoo.segmentation import segment as segment_probability_map


def segment(
    data: Any,
    model: nn.Module | str | None = None,
    params: SegmentationParams | None = None,
    *,
    pixel_size: float | None = None,
    backend: str = "auto",
    precision: str = "auto",
    tta: bool = False,
    tile: int | None = None,
    batch_size: int = 4,
    device: str | None = None,
    **overrides: Any,
) -> np.ndarray:
    """Segment cells -> uint32 label image(s), IDs 1..N (every pixel belongs to a cell).

    Args:
        data: without `model`, the (C, H, W) probabilities `Predictor.predict` returns (channel 0 = membrane,
            1 = cell) or a (H, W) P(cell) map; with `model`, an image (H, W) or stack (S, H, W): an array, a dask
            or zarr array or a path (IDs unique across the stack).
        model: a zoo model or a checkpoint name / folder / Hub id; its stored segmentation defaults are used
            unless `params` is given.
        params: the parameters (default: the checkpoint's, else `SegmentationParams()`).
        pixel_size, backend, precision, tta, tile, batch_size, device: as for `Predictor`, with `model` only.
        overrides: single parameters to change, e.g. ``threshold=0.6`` or ``merge_threshold=None``.
    """
    if model is None:
        return segment_probability_map(data, params=params, **overrides)
    predictor = Predictor(
        model,
        backend=backend,
        precision=precision,
        tta=tta,
        tile=tile,
        batch_size=batch_size,
        pixel_size=pixel_size,
        device=device,
    )
    num_classes = getattr(predictor.model, "num_classes", -1)
    if isinstance(data, np.ndarray) and data.dtype.kind == "f" and data.ndim == 3 and data.shape[0] == num_classes:
        raise ValueError(
            f"got a (C, H, W) float array {data.shape} and a model: pass either probabilities without a model "
            "or an image with one"
        )
    chosen = params or checkpoint_params(predictor.model)
    if overrides:
        chosen = dataclasses.replace(chosen, **overrides)
    return predictor.segment(data, chosen)


__all__ = ["segment"]
