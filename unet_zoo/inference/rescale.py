"""Prediction of images at another pixel size than the model was trained at.

A model sees structures at the size they had in its training data (ISBI 2012: 4 x 4 nm per pixel). An image
at 8 nm/px shows a membrane half as wide, so it is first rescaled to the model's pixel size (bilinear, with
anti-aliasing when shrinking), predicted, and the probabilities are resized back to the image's own grid.

    probs = predict_at_pixel_size(model, stack, pixel_size=8.0)   # (S, C, H, W) on the input's grid
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from unet_zoo.inference.tiling import predict_stack

ISBI_PIXEL_SIZE_NM = 4.0
"""ISBI 2012's pixel size (4 x 4 nm, serial-section TEM of the Drosophila ventral nerve cord); the pixel size of
a checkpoint that records none."""
SCALE_TOLERANCE = 0.02  # relative pixel-size differences below this are not rescaled


def model_pixel_size(model: nn.Module) -> float:
    """The pixel size in nm the model was trained at, from its card's training record (``pixel_size_nm``);
    checkpoints that record none were trained on ISBI 2012 (`ISBI_PIXEL_SIZE_NM`)."""
    info = getattr(model, "pretrained_info", None) or {}
    training = info.get("training") or {} if isinstance(info, dict) else {}
    value = training.get("pixel_size_nm") or (info.get("pixel_size_nm") if isinstance(info, dict) else None)
    return float(value) if value else ISBI_PIXEL_SIZE_NM


def scale_factor(pixel_size: float | None, target_pixel_size: float) -> float:
    """How much an image at `pixel_size` nm must be enlarged to reach `target_pixel_size` (1.0: not at all,
    also for None or a difference under `SCALE_TOLERANCE`)."""
    if pixel_size is None:
        return 1.0
    if pixel_size <= 0 or target_pixel_size <= 0:
        raise ValueError(f"pixel sizes must be > 0 nm, got {pixel_size} and {target_pixel_size}")
    factor = pixel_size / target_pixel_size
    return 1.0 if abs(factor - 1) < SCALE_TOLERANCE else factor


def rescale_stack(stack: np.ndarray, factor: float) -> np.ndarray:
    """(S, H, W) images enlarged by `factor` (order 1; anti-aliased when shrinking), in their own dtype."""
    from skimage.transform import rescale

    stack = np.asarray(stack)
    if factor == 1.0:
        return stack
    out = np.stack(
        [
            rescale(s.astype(np.float32), factor, order=1, anti_aliasing=factor < 1, preserve_range=True, mode="reflect")
            for s in stack
        ]
    )
    if stack.dtype.kind in "iu":
        info = np.iinfo(stack.dtype)
        out = np.clip(np.round(out), info.min, info.max)
    return out.astype(stack.dtype)


def resize_probabilities(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, C, h, w) probabilities resized to (S, C, H, W) (order 1), renormalised to sum to 1 over C."""
    from skimage.transform import resize

    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape[-2:] == tuple(shape):
        return probs
    out = np.stack([resize(p, (p.shape[0], *shape), order=1, anti_aliasing=False, mode="edge") for p in probs])
    out = np.clip(out, 0, None)
    return (out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def predict_at_pixel_size(
    model: nn.Module,
    stack: np.ndarray,
    pixel_size: float | None,
    model_pixel_size_nm: float | None = None,
    **kwargs: Any,
) -> np.ndarray:
    """`predict_stack` of (S, H, W) images at `pixel_size` nm/px: rescaled to the model's pixel size
    (`model_pixel_size` unless given), predicted, and the (S, C, H, W) probabilities resized back to (H, W).
    `pixel_size` None predicts as is. kwargs go to `predict_stack`."""
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    target = model_pixel_size_nm if model_pixel_size_nm is not None else model_pixel_size(model)
    factor = scale_factor(pixel_size, target)
    if factor == 1.0:
        return predict_stack(model, stack, **kwargs)
    probs = predict_stack(model, rescale_stack(stack, factor), **kwargs)
    return resize_probabilities(probs, stack.shape[-2:])


__all__ = [
    "ISBI_PIXEL_SIZE_NM",
    "model_pixel_size",
    "predict_at_pixel_size",
    "rescale_stack",
    "resize_probabilities",
    "scale_factor",
]
