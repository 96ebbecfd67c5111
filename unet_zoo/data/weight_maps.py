"""Pixel-wise loss weight maps of the U-Net paper (Ronneberger et al. 2015, section 3, eq. 2).

    w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 * sigma**2))

w_c balances the class frequencies: a pixel of class c gets N / (K * N_c) (N pixels, N_c of class c,
K classes present), so w_c averages to 1 over the image. d1, d2 are the Euclidean distances in
pixels from x to the nearest and the second nearest cell (the distance from a pixel centre to the
nearest pixel centre of that cell; 1 for a background pixel touching the cell).

Choices (as the paper's Fig. 3d):
- Cells are the 4-connected components of the foreground of a binary label (two cells separated
  by a one-pixel diagonal membrane stay two cells); an instance label image (0 = background,
  each other value one cell) is used as given. A label with a single non-zero value (0/1, 0/255,
  bool) is read as binary, one with two or more non-zero values as instances (``instances=`` forces
  either reading).
- The border term is applied to background pixels only; cell pixels get w_c alone. With fewer than
  two cells the term is 0 everywhere.

Speed: one distance transform per cell, each restricted to the cell's bounding box grown by
R = sigma * sqrt(2 ln(w0 / 1e-6)) pixels. Distances inside the box are exact; a pixel outside it is
more than R from the cell, where the border term is below 1e-6, so the result differs from the
brute-force definition by less than 1e-6 (absolute) everywhere.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from unet_zoo.utils.files import atomic_write_with

TOLERANCE = 1e-6  # absolute bound on the truncation error of the border term
_CACHE_VERSION = 2  # bump when the definition changes, so old cache files are not reused (2: 0/255 masks are binary)


def _cells(label: np.ndarray, instances: bool | None) -> tuple[np.ndarray, int]:
    """(instance image int32 with 0 = background, number of cells)."""
    if instances is None:
        # a mask (one foreground value: 1, 255 as in the ISBI tifs, True) is binary; more values are instances
        foreground = label[label != 0]
        instances = foreground.size > 0 and bool((foreground != foreground.flat[0]).any())
    if instances:
        values, inverse = np.unique(label, return_inverse=True)
        inverse = inverse.reshape(label.shape).astype(np.int32)
        if values[0] != 0:  # no background value present: every value is a cell
            inverse += 1
        return inverse, int((values != 0).sum())
    cells, count = ndimage.label(label > 0)  # default structure: 4-connectivity in 2-D
    return cells, int(count)


def _check_label(label: np.ndarray, w0: float, sigma: float) -> np.ndarray:
    label = np.asarray(label)
    if label.ndim != 2:
        hint = "; use weight_maps_for_stack for (S, H, W) stacks" if label.ndim == 3 else ""
        raise ValueError(f"weight_map expects a 2-D label image (H, W), got shape {label.shape}{hint}")
    if not (label.dtype == bool or np.issubdtype(label.dtype, np.integer)):
        raise TypeError(
            f"weight_map expects integer or bool labels (0/1 or instance ids), got {label.dtype}; "
            "threshold probability maps first, e.g. (p > 0.5).astype(np.uint8)"
        )
    if label.size and label.min() < 0:
        raise ValueError("labels must be >= 0 (0 = background / membrane)")
    if w0 < 0 or sigma <= 0:
        raise ValueError(f"need w0 >= 0 and sigma > 0 (pixels), got w0={w0}, sigma={sigma}")
    return label


def class_balance_weights(foreground: np.ndarray) -> np.ndarray:
    """w_c: (H, W) float32, N / (K * N_c) for each pixel's class c (K = classes present)."""
    n = foreground.size
    n_fg = int(foreground.sum())
    counts = [c for c in (n - n_fg, n_fg) if c]
    if len(counts) < 2:
        return np.ones(foreground.shape, np.float32)
    return np.where(foreground, n / (2 * n_fg), n / (2 * (n - n_fg))).astype(np.float32)


def border_distances(cells: np.ndarray, count: int, radius: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """d1, d2: (H, W) float32 distances (pixels) to the nearest and second nearest cell.

    cells: (H, W) int instance image, 0 = background, cells 1..count. Distances are exact where
    they are <= `radius`; beyond it they may be larger than the truth or inf (never smaller).
    """
    shape = cells.shape
    d1 = np.full(shape, np.inf, np.float32)
    d2 = np.full(shape, np.inf, np.float32)
    margin = int(math.ceil(radius)) if math.isfinite(radius) else max(shape)
    for index, box in enumerate(ndimage.find_objects(cells), start=1):
        if box is None:
            continue
        crop = tuple(slice(max(s.start - margin, 0), min(s.stop + margin, size)) for s, size in zip(box, shape))
        dist = ndimage.distance_transform_edt(cells[crop] != index).astype(np.float32)
        a, b = d1[crop], d2[crop]
        # insert `dist` into the running two smallest values (views write through)
        b[...] = np.minimum(b, np.maximum(a, dist))
        a[...] = np.minimum(a, dist)
    return d1, d2


def weight_map(
    label: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    *,
    instances: bool | None = None,
    balance: bool = True,
) -> np.ndarray:
    """The paper's loss weight map (eq. 2) for one label image.

    label: (H, W) bool / integer. Binary (0 = membrane / background and one other value, e.g. 1 or
        255 = cell): cells are the 4-connected foreground components. With two or more non-zero
        values, an instance image (0 = background, each value one cell); `instances` forces either reading.
    w0: border weight (paper: 10). sigma: border width in pixels (paper: about 5).
    balance: add the class-balancing w_c (else w_c = 1).
    Returns (H, W) float32 >= w_c; the border term is applied to background pixels only.
    """
    label = _check_label(label, w0, sigma)
    cells, count = _cells(label, instances)
    foreground = cells > 0
    weights = class_balance_weights(foreground) if balance else np.ones(label.shape, np.float32)
    if count < 2 or w0 == 0:
        return weights
    radius = sigma * math.sqrt(2 * math.log(max(w0 / TOLERANCE, 1.0 + 1e-12)))
    d1, d2 = border_distances(cells, count, radius)
    background = ~foreground & np.isfinite(d2)
    total = d1[background] + d2[background]
    weights[background] += (w0 * np.exp(-(total**2) / (2 * sigma**2))).astype(np.float32)
    return weights


def _cache_key(labels: np.ndarray, w0: float, sigma: float, instances: bool | None, balance: bool) -> str:
    digest = hashlib.sha256()
    digest.update(repr((_CACHE_VERSION, labels.shape, str(labels.dtype), float(w0), float(sigma), instances, balance)).encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:24]


def weight_maps_for_stack(
    labels: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    cache_dir: Path | str | None = None,
    *,
    instances: bool | None = None,
    balance: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """`weight_map` of every slice of a (S, H, W) label stack -> (S, H, W) float32.

    With `cache_dir`, the result is stored as ``weights-<hash>.npy`` where the hash covers the labels'
    bytes, shape, dtype and every parameter; a later call with the same inputs reads it back.
    Files are written atomically (temporary file + os.replace). progress: ``progress(done, total)`` after each
    computed slice.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"weight_maps_for_stack expects (S, H, W) labels, got shape {labels.shape}")
    path = None
    if cache_dir is not None:
        cache_dir = Path(cache_dir).expanduser()
        path = cache_dir / f"weights-{_cache_key(labels, w0, sigma, instances, balance)}.npy"
        if path.is_file():
            try:
                cached = np.load(path)
                if cached.shape == labels.shape and cached.dtype == np.float32:
                    return cached
            except (OSError, ValueError):
                pass  # unreadable cache entry: recompute and overwrite
    out = np.empty(labels.shape, np.float32)
    for i in range(len(labels)):
        out[i] = weight_map(labels[i], w0, sigma, instances=instances, balance=balance)
        if progress is not None:
            progress(i + 1, len(labels))
    if path is not None:
        atomic_write_with(path, lambda tmp: np.save(tmp, out), suffix=".npy")
    return out


__all__ = ["TOLERANCE", "border_distances", "class_balance_weights", "weight_map", "weight_maps_for_stack"]
