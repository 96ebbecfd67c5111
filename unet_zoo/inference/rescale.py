"""Prediction of images at another pixel size than the model was trained at.

A model sees structures at the size they had in its training data (ISBI 2012: 4 x 4 nm per pixel). An image
at 8 nm/px shows a membrane half as wide, so it is first rescaled to the model's pixel size (bilinear, with
anti-aliasing when shrinking), predicted, and the probabilities are resized back to the image's own grid.

    probs = predict_at_pixel_size(model, stack, pixel_size=8.0)   # (S, C, H, W) on the input's grid
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from unet_zoo.data.pixel_size import check_pixel_size, check_scale
from unet_zoo.inference.tiling import predict_stack, predict_uncertainty
from unet_zoo.models.provenance import provenance_of

SCALE_TOLERANCE = 0.02  # relative pixel-size differences below this are not rescaled
DEFAULT_MODEL_PIXEL_SIZE_NM = 4.0
"""The pixel size of a checkpoint whose card records none: such checkpoints were trained on ISBI 2012 (4 nm/px)."""


def model_pixel_size(model: nn.Module) -> float:
    """The pixel size in nm the model was trained at, from its card's training record (``pixel_size_nm``);
    checkpoints that record none were trained on ISBI 2012 (`DEFAULT_MODEL_PIXEL_SIZE_NM`). A recorded size that is not
    plausible is a `PixelSizeError` naming the checkpoint."""
    record = provenance_of(model)
    if record.pixel_size_nm is None:
        return DEFAULT_MODEL_PIXEL_SIZE_NM
    return check_pixel_size(record.pixel_size_nm, f"pixel_size_nm in the card of {record.label}")


def scale_factor(
    pixel_size: float | None, target_pixel_size: float, source: str = "pixel size", shape: tuple[int, int] | None = None
) -> float:
    """How much an image at `pixel_size` nm must be enlarged to reach `target_pixel_size` (1.0: not at all,
    also for None or a difference under `SCALE_TOLERANCE`). Both sizes, the factor and, given the image's (H, W)
    `shape`, the rescaled size are checked (`unet_zoo.data.pixel_size.check_scale`); `source` names where
    `pixel_size` came from in a `PixelSizeError`."""
    if pixel_size is None:
        return 1.0
    factor = check_scale(pixel_size, target_pixel_size, source)
    if abs(factor - 1) < SCALE_TOLERANCE:
        return 1.0
    return check_scale(pixel_size, target_pixel_size, source, shape) if shape is not None else factor


def rescaled_length(length: int, factor: float) -> int:
    """Pixels along an axis of `length` px enlarged by `factor` (rounded, at least 1)."""
    return max(1, round(length * factor))


def sample_positions(start: int, stop: int, length_out: int, length_in: int) -> np.ndarray:
    """Where the centres of output pixels start..stop-1 of an axis resized from `length_in` to `length_out` px
    lie on the input axis, in input pixels (the pixel-centre convention of skimage.transform.resize)."""
    return (np.arange(start, stop, dtype=np.float64) + 0.5) * (length_in / length_out) - 0.5


def antialias_sigma(factor: float) -> float:
    """Gaussian sigma (input pixels) applied before shrinking by `factor` < 1 (skimage's choice); 0 otherwise."""
    return max(0.0, (1 / factor - 1) / 2) if factor < 1 else 0.0


def antialias_margin(factor: float) -> int:
    """Input pixels beyond a region that its anti-aliasing filter reads (0 when not shrinking)."""
    sigma = antialias_sigma(factor)
    return int(4.0 * sigma + 0.5) + 1 if sigma else 0


def _interpolate(array: np.ndarray, positions: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of `array` along `axis` at `positions` (input pixels), clamped at the ends."""
    n = array.shape[axis]
    pos = np.clip(positions, 0, n - 1)
    low = np.minimum(np.floor(pos).astype(np.int64), max(n - 2, 0))
    high = np.minimum(low + 1, n - 1)
    weight = (pos - low).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = len(positions)
    weight = weight.reshape(shape)
    return np.take(array, low, axis=axis) * (1 - weight) + np.take(array, high, axis=axis) * weight


def sample_region(
    read: Callable[[slice, slice], np.ndarray],
    shape: tuple[int, int],
    out_shape: tuple[int, int],
    rows: slice,
    cols: slice,
    factor: float,
) -> np.ndarray:
    """Rows and cols of an image of `shape` (..., H, W) resized to `out_shape` (bilinear; anti-aliased when
    `factor` < 1), reading only the input pixels they need through ``read(in_rows, in_cols)``.

    Any region of the resized image equals the same region of the whole image resized (`rescale_stack`,
    `resize_probabilities`): each output pixel depends only on input pixels within `antialias_margin` + 1
    of where it lies, so tiles and blocks of an image can be resized separately. Returns float32 (..., r, c).
    """
    ys = sample_positions(rows.start, rows.stop, out_shape[0], shape[0])
    xs = sample_positions(cols.start, cols.stop, out_shape[1], shape[1])
    margin = antialias_margin(factor)
    top = max(0, int(np.floor(ys[0])) - margin)
    bottom = min(shape[0], int(np.floor(ys[-1])) + 2 + margin)
    left = max(0, int(np.floor(xs[0])) - margin)
    right = min(shape[1], int(np.floor(xs[-1])) + 2 + margin)
    crop = np.asarray(read(slice(top, bottom), slice(left, right)), dtype=np.float32)
    sigma = antialias_sigma(factor)
    if sigma:
        from scipy.ndimage import gaussian_filter

        spatial = [0.0] * (crop.ndim - 2) + [sigma, sigma]
        # mode "mirror" = np.pad "reflect": at the image's edges as a whole image is filtered; inside, the margin
        # gives the filter the pixels it reads
        crop = gaussian_filter(crop, spatial, mode="mirror", truncate=4.0)
    out = _interpolate(crop, ys - top, crop.ndim - 2)
    return _interpolate(out, xs - left, crop.ndim - 1).astype(np.float32)


def as_image_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Resampled pixels in an image's own `dtype`: integers rounded and clipped to its range."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def rescale_stack(stack: np.ndarray, factor: float) -> np.ndarray:
    """(S, H, W) images enlarged by `factor` to (S, round(H x factor), round(W x factor)) (bilinear; anti-aliased
    when shrinking), in their own dtype."""
    stack = np.asarray(stack)
    if factor == 1.0:
        return stack
    h, w = stack.shape[-2:]
    out_shape = (rescaled_length(h, factor), rescaled_length(w, factor))
    whole = (slice(0, out_shape[0]), slice(0, out_shape[1]))
    values = sample_region(lambda r, c: stack[..., r, c], (h, w), out_shape, *whole, factor)
    return as_image_dtype(values, stack.dtype)


def resize_probabilities(probs: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(S, C, h, w) probabilities resized to (S, C, H, W) (bilinear; a convex mix, so they still sum to 1 over C)."""
    probs = np.asarray(probs, dtype=np.float32)
    if probs.shape[-2:] == tuple(shape):
        return probs
    h, w = probs.shape[-2:]
    return sample_region(lambda r, c: probs[..., r, c], (h, w), (shape[0], shape[1]), slice(0, shape[0]), slice(0, shape[1]), 1.0)


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
    factor = scale_factor(pixel_size, target, shape=(stack.shape[-2], stack.shape[-1]))
    if factor == 1.0:
        return predict_stack(model, stack, **kwargs)
    probs = predict_stack(model, rescale_stack(stack, factor), **kwargs)
    return resize_probabilities(probs, stack.shape[-2:])


def uncertainty_at_pixel_size(
    model: nn.Module,
    stack: np.ndarray,
    pixel_size: float | None,
    model_pixel_size_nm: float | None = None,
    progress: Callable[[int], None] | None = None,
    **kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """`predict_uncertainty` of each (S, H, W) image at `pixel_size` nm/px (rescaled as `predict_at_pixel_size`):
    ((S, C, H, W) TTA-averaged probabilities, (S, H, W) uncertainty), both on the input's grid. `progress` is
    called with the slice index after each slice; kwargs go to `predict_uncertainty`."""
    stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    target = model_pixel_size_nm if model_pixel_size_nm is not None else model_pixel_size(model)
    factor = scale_factor(pixel_size, target)
    probs, uncertainty = [], []
    for index, image in enumerate(rescale_stack(stack, factor)):
        p, u = predict_uncertainty(model, image, **kwargs)
        probs.append(p)
        uncertainty.append(u)
        if progress is not None:
            progress(index)
    shape = stack.shape[-2:]
    back = resize_probabilities(np.stack(probs), shape)
    spread = resize_probabilities(np.stack(uncertainty)[:, None], shape)[:, 0]
    return back, np.ascontiguousarray(spread, dtype=np.float32)


__all__ = [
    "DEFAULT_MODEL_PIXEL_SIZE_NM",
    "model_pixel_size",
    "predict_at_pixel_size",
    "antialias_margin",
    "as_image_dtype",
    "rescale_stack",
    "rescaled_length",
    "resize_probabilities",
    "sample_positions",
    "sample_region",
    "scale_factor",
    "uncertainty_at_pixel_size",
]
