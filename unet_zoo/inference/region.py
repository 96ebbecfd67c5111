"""Overlap-tile prediction of one rectangle of a large image, equal to `predict_tiled` on the whole image.

`predict_tiled` lays its tiles out over the whole (mirror-padded) image. `predict_region` lays out the
same tiles, in the same global coordinates, for each of the same rotations/flips, but runs only the
tiles that touch the requested rectangle and reads only the pixels those tiles need (the rectangle plus
the model's context, mirrored at the image border exactly as `np.pad(..., mode="reflect")` does). So
the probabilities of the rectangle equal ``predict_tiled(model, image)[:, rows, cols]`` up to float
rounding, for valid-convolution models (abutting tiles) and same-size models (blended tiles) alike,
while memory depends on the rectangle only. `unet_zoo.volumes.predict` builds blockwise volume prediction on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from unet_zoo.inference.tiling import (
    _DIHEDRAL,
    Normalise,
    _as_chw,
    _batches,
    _check_tile,
    _forward,
    _positions,
    _resolve_device,
    _stride,
    _window,
    choose_tile,
    inference_settings,
    normalise_image,
    tile_margin,
)
from unet_zoo.runtime.settings import Precision, RuntimeSettings, prepare_model

Reader = Callable[[slice, slice], np.ndarray]
"""reader(rows, cols) -> the raw pixels image[rows, cols], (Y, X) or (C_in, Y, X), any dtype normalise takes."""


@dataclass(frozen=True)
class AxisTiles:
    """predict_tiled's tiles along one axis of a (possibly rotated) image, restricted to an output range.

    Coordinates: `starts`, `lo`, `hi` are in the mirror-padded image; `index` maps padded positions
    lo..hi-1 to pixels of the unpadded image; the output range [out_lo, out_hi) is in the unpadded image.
    """

    tile: int
    starts: tuple[int, ...]  # tile starts that touch the output range, ascending
    lo: int  # padded input needed: [lo, hi)
    hi: int
    index: np.ndarray  # (hi - lo,) int: unpadded pixel of each padded position in [lo, hi)
    crop: tuple[int, int]  # where the output range lies in the assembled local result (local coordinates)
    paste: int | None  # valid convolutions: output pixels each tile contributes (None: blended tiles)


def axis_tiles(model: nn.Module, length: int, tile: int, out_lo: int, out_hi: int, margin: int | None = None) -> AxisTiles:
    """The tiles `predict_tiled` runs along an axis of `length` px (tile side `tile`) that touch [out_lo, out_hi).

    `margin`: same-size models' mirrored context before the image, `tile_margin(model, tile, height, width)` of the
    whole (rotated) image (None: that of a square image of `length` px)."""
    if not 0 <= out_lo < out_hi <= length:
        raise ValueError(f"output range [{out_lo}, {out_hi}) is not inside an axis of {length} px")
    out = _check_tile(model, tile)
    stride = _stride(model)
    if out < tile:  # valid convolutions: tiles start at multiples of `step` and contribute `step` px each
        step = out - out % stride
        margin = (tile - out) // 2
        n = math.ceil(length / step)
        pad_after = (n - 1) * step + tile - length - margin
        first, last = out_lo // step, (out_hi - 1) // step
        starts = tuple(j * step for j in range(first, last + 1))
        lo, hi = starts[0], starts[-1] + tile
        crop = (out_lo - lo, out_hi - lo)  # the local result starts at output pixel `lo` (= first * step)
        paste: int | None = step
    else:  # same-size models: overlapping tiles, spread evenly over the padded image, blended
        margin = tile_margin(model, tile, length, length) if margin is None else margin
        step = max(stride, tile - 2 * margin)
        padded = length + 2 * margin
        full = tile + max(0, -(-(padded - tile) // stride) * stride)
        pad_after = full - length - margin
        starts = tuple(p for p in _positions(full, tile, step, stride) if p < out_hi + margin and p + tile > out_lo + margin)
        lo, hi = starts[0], starts[-1] + tile
        crop = (out_lo + margin - lo, out_hi + margin - lo)
        paste = None
    index = np.pad(np.arange(length), (margin, pad_after), mode="reflect")[lo:hi]
    return AxisTiles(tile, starts, lo, hi, index, crop, paste)


def _view_axes(k: int, flip: bool) -> tuple[tuple[int, bool], tuple[int, bool]]:
    """For predict_tiled's view ``rot90(flip(image), k)``: per view axis, (image axis, reversed?)."""
    probe = np.arange(6).reshape(2, 3)  # value = 3 * row + col
    view = np.rot90(probe[:, ::-1] if flip else probe, k)
    axes = []
    for step in ((1, 0), (0, 1)):
        (r0, c0), (r1, c1) = divmod(int(view[0, 0]), 3), divmod(int(view[step]), 3)
        axes.append((0, r1 < r0) if r1 != r0 else (1, c1 < c0))
    return axes[0], axes[1]


def _run_tiles(
    model: nn.Module,
    image: np.ndarray,
    ys: AxisTiles,
    xs: AxisTiles,
    batch_size: int,
    device: torch.device,
    settings: RuntimeSettings,
) -> np.ndarray:
    """(C_in, ys.hi-ys.lo, xs.hi-xs.lo) padded input -> (C, crop_y, crop_x) probabilities of the output range."""
    tile = ys.tile
    starts = [(y - ys.lo, x - xs.lo) for y in ys.starts for x in xs.starts]  # row-major, like predict_tiled
    total: np.ndarray | None = None
    weight: np.ndarray | None = None
    window = _window(tile) if ys.paste is None else None
    for chunk in _batches(starts, batch_size):
        probs = _forward(model, np.stack([image[:, y : y + tile, x : x + tile] for y, x in chunk]), device, settings)
        if total is None:
            total = np.zeros((probs.shape[1], ys.hi - ys.lo, xs.hi - xs.lo), dtype=np.float32)
            weight = None if window is None else np.zeros(total.shape[1:], dtype=np.float32)
        assert total is not None
        for (y, x), p in zip(chunk, probs):
            if window is None:
                step = ys.paste
                total[:, y : y + step, x : x + step] = p[:, :step, :step]
            else:
                assert weight is not None  # made with total when there is a window
                total[:, y : y + tile, x : x + tile] += p * window
                weight[y : y + tile, x : x + tile] += window
    assert total is not None  # at least one tile
    (y0, y1), (x0, x1) = ys.crop, xs.crop
    if weight is None:
        return total[:, y0:y1, x0:x1]
    return total[:, y0:y1, x0:x1] / weight[y0:y1, x0:x1]


def predict_region(
    model: nn.Module,
    read: Reader,
    shape: tuple[int, int],
    rows: tuple[int, int],
    cols: tuple[int, int],
    *,
    tile: int | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    tta: bool = False,
    normalise: Normalise = "auto",
    amp: bool = False,
    precision: Precision | None = None,
) -> np.ndarray:
    """Probabilities of the rectangle [rows) x [cols) of an image of `shape`, as predict_tiled would give them.

    Args:
        model: a zoo model; run in eval mode on `device` (default: where it is), restored afterwards.
        read: ``read(row_slice, col_slice)`` returns those pixels of the image, (Y, X) or (C_in, Y, X); it is
            called once, for the rectangle plus the context the tiles need (clipped to the image).
        shape: (height, width) of the whole image in pixels.
        rows, cols: [start, stop) pixel ranges of the rectangle.
        tile, batch_size, tta, normalise, amp, precision: as for `unet_zoo.inference.tiling.predict_tiled` (tile=None: the
            tile predict_tiled chooses for the whole image).

    Returns:
        (C, rows[1] - rows[0], cols[1] - cols[0]) float32 softmax probabilities.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    height, width = shape
    transforms = _DIHEDRAL if tta else _DIHEDRAL[:1]
    plans = []
    for k, flip in transforms:
        axes = _view_axes(k, flip)
        view_shape = (shape[axes[0][0]], shape[axes[1][0]])
        side = choose_tile(model, *view_shape, tile)
        margin = tile_margin(model, side, *view_shape)
        per_axis = []
        for axis, reverse in axes:
            length = shape[axis]
            lo, hi = (rows, cols)[axis]
            tiles = axis_tiles(model, length, side, length - hi if reverse else lo, length - lo if reverse else hi, margin)
            per_axis.append((axis, reverse, tiles, (length - 1 - tiles.index) if reverse else tiles.index))
        plans.append(per_axis)
    # one read that covers the pixels of every view's tiles
    bounds = []
    for axis in (0, 1):
        used = [idx for plan in plans for a, _, _, idx in plan if a == axis]
        bounds.append((min(int(i.min()) for i in used), max(int(i.max()) for i in used) + 1))
    (r0, r1), (c0, c1) = bounds
    in_channels = int(getattr(model, "in_channels", 1))
    pixels = _as_chw(normalise_image(read(slice(r0, r1), slice(c0, c1)), normalise), in_channels)
    if pixels.shape[1:] != (r1 - r0, c1 - c0):
        raise ValueError(f"read({r0}:{r1}, {c0}:{c1}) returned shape {pixels.shape}, expected ({r1 - r0}, {c1 - c0})")
    dev = _resolve_device(model, device)
    was_training = model.training
    settings = inference_settings(dev, amp, precision, model)
    prepare_model(model, dev, channels_last=settings.channels_last).eval()  # in place, as predict_tiled does
    try:
        total: np.ndarray | None = None
        for (ay, rev_y, ys, iy), (ax, rev_x, xs, ix) in plans:
            iy, ix = iy - bounds[ay][0], ix - bounds[ax][0]
            if ay == 0:  # view rows are image rows
                view = pixels[:, iy[:, None], ix[None, :]]
            else:  # view rows are image columns
                view = pixels[:, ix[:, None], iy[None, :]].transpose(0, 2, 1)
            probs = _run_tiles(model, np.ascontiguousarray(view), ys, xs, batch_size, dev, settings)
            if rev_y:
                probs = probs[:, ::-1]
            if rev_x:
                probs = probs[:, :, ::-1]
            if ay != 0:
                probs = probs.transpose(0, 2, 1)
            total = probs.astype(np.float32) if total is None else total + probs
        assert total is not None  # at least one view
        return np.ascontiguousarray(total / len(transforms), dtype=np.float32)
    finally:
        model.train(was_training)


__all__ = ["AxisTiles", "Reader", "axis_tiles", "predict_region"]
