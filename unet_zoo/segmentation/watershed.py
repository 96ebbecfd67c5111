"""Seeded watershed of a membrane probability map: seeds from the distance transform of the cells, then a size filter."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import relabel_sequential, watershed


def distance_seeds(cell_prob: np.ndarray, threshold: float, sigma: float, min_distance: int) -> np.ndarray:
    """Seeds of a (H, W) P(cell) map -> (H, W) int32 markers, 0 = no seed, 1..N = seeds.

    The cells (P(cell) > threshold) are distance-transformed (pixels to the nearest non-cell pixel), the
    distance is smoothed with a Gaussian of `sigma` pixels, and its local maxima at least `min_distance`
    pixels apart within one cell component become seeds. A cell component without a maximum is a seed itself.
    """
    cells = np.asarray(cell_prob) > threshold
    components, n = ndi.label(cells)
    if n == 0:
        return np.zeros(cells.shape, dtype=np.int32)
    distance = ndi.distance_transform_edt(cells)
    if sigma > 0:
        distance = ndi.gaussian_filter(distance, sigma)
    # skimage builds a (2 d + 1)^2 footprint: beyond the image's diagonal a larger d changes nothing but the memory
    reach = min(int(min_distance), math.ceil(math.hypot(*cells.shape)) + 1)
    peaks = peak_local_max(distance, min_distance=reach, labels=components, exclude_border=False)
    markers = np.zeros(cells.shape, dtype=np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    seeded = np.zeros(n + 1, dtype=bool)
    seeded[components[tuple(peaks.T)]] = True
    unseeded = ~seeded[components] & (components > 0)
    if unseeded.any():  # small or flat components: the whole component is its seed
        markers[unseeded] = components[unseeded] + len(peaks)
        markers = relabel_sequential(markers)[0].astype(np.int32)
    return markers


def flood(membrane_prob: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """Watershed of a (H, W) P(membrane) map from (H, W) markers -> int32 labels; every pixel gets a segment."""
    if markers.max() == 0:
        return np.ones(markers.shape, dtype=np.int32)
    return watershed(np.asarray(membrane_prob, dtype=np.float32), markers, connectivity=1).astype(np.int32)


def dissolve_small(labels: np.ndarray, membrane_prob: np.ndarray, min_size: int) -> np.ndarray:
    """Remove segments of fewer than `min_size` pixels by flooding them from their neighbours -> int32 labels 1..N.

    The pixels of the small segments are re-assigned by a watershed of `membrane_prob` seeded with the
    segments that stay. If every segment is small, the largest one stays.
    """
    labels = np.asarray(labels)
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = True  # 0 is never a segment
    if small[labels].any():
        if small[1:].all():
            small[int(np.argmax(sizes[1:])) + 1] = False
        kept = np.where(small[labels], 0, labels)
        labels = watershed(np.asarray(membrane_prob, dtype=np.float32), kept, connectivity=1)
    return relabel_sequential(labels.astype(np.int32))[0]


__all__ = ["dissolve_small", "distance_seeds", "flood"]
