"""Evaluate a model on labelled EM slices: predict them (overlap-tile, optional TTA) and score the
probabilities with the ISBI challenge's scores (`unet_zoo.evaluation.metrics.isbi_scores`), optionally also
the cells segmented from them.

The ISBI 2012 experiment's held-out evaluation (`unet_zoo.experiments.isbi2012.evaluation`) and fine-tuning
(`unet_zoo.finetuning`) both score models here.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.evaluation.metrics import isbi_scores, segmentation_scores
from unet_zoo.inference.tiling import Forward, _resolve_device, inference_settings, predict_stack
from unet_zoo.runtime.settings import Precision
from unet_zoo.segmentation import SegmentationParams, checkpoint_params, segment_probabilities


def evaluate_model(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    tta: bool = False,
    device: Any = None,
    batch_size: int = 4,
    tile: int | None = None,
    progress: Any = None,
    warping: bool = True,
    segment: bool | SegmentationParams = False,
    precision: Precision = "fp32",
    forward: Forward | None = None,
) -> dict[str, Any]:
    """Predict (S, H, W) uint8 `images` and score them against (S, H, W) `labels` (1 or 255 = cell).

    The cell probability is softmax channel 1 (channel 0 = membrane). Returns `isbi_scores` plus
    ``seconds_per_slice`` (inference wall time, excluding scoring), ``num_slices`` and ``tta``.
    `progress`, if given, is called with each finished slice index. warping=False skips the warping
    error (the slowest score, ~0.6-3 s per 512x512 slice on 2 CPU cores). `segment` (True: with the
    checkpoint's stored defaults, or given `SegmentationParams`) also segments the probabilities into cells
    (`unet_zoo.segment`) and adds ``segmentation``: `segmentation_scores` of the label images, the parameters
    and ``seconds_per_slice`` of the segmentation. `precision` ("fp32", "bf16", "auto") goes to
    `predict_tiled`; ``precision`` in the result records what ran ("bf16" or "fp32"). `forward` (e.g. the
    ``forward`` of `unet_zoo.exporters.paths.choose_inference_path`) runs the tiles instead of torch; then
    `precision` should say what it runs in.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 2:
        images, labels = images[None], labels[None]
    if images.ndim != 3 or images.shape != labels.shape:
        raise ValueError(f"images {images.shape} and labels {labels.shape} must both be (S, H, W)")
    num_classes = int(getattr(model, "num_classes", 2))
    if num_classes < 2:
        raise ValueError(f"evaluation needs a model with >= 2 output classes (1 = cell), got {num_classes}")
    used = inference_settings(_resolve_device(model, device), precision=precision, model=model).precision
    start = time.perf_counter()
    probs = predict_stack(
        model,
        images,
        progress=progress,
        tile=tile,
        batch_size=batch_size,
        device=device,
        tta=tta,
        precision=precision,
        forward=forward,
    )
    seconds = time.perf_counter() - start
    scores = isbi_scores(probs[:, 1], labels, warping=warping)
    scores.update(
        seconds_per_slice=seconds / len(images),
        num_slices=len(images),
        tta=bool(tta),
        precision=used,
    )
    if segment is not False:
        params = segment if isinstance(segment, SegmentationParams) else checkpoint_params(model)
        start = time.perf_counter()
        cells = np.stack([segment_probabilities(p, params) for p in probs])
        seconds = time.perf_counter() - start
        scores["segmentation"] = {
            **segmentation_scores(cells, labels),
            "params": params.to_dict(),
            "seconds_per_slice": seconds / len(images),
        }
    return scores


__all__ = ["evaluate_model"]
