"""Segment a section larger than memory allows block by block, with a halo, and join the blocks' labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.segmentation import relabel_sequential

from unet_zoo.segmentation.api import segment_probabilities
from unet_zoo.utils.segmentation_params import SegmentationParams


def _windows(size: int, block: int, halo: int) -> list[tuple[int, int, int, int]]:
    """(inner start, inner stop, outer start, outer stop) along one axis of `size` pixels."""
    return [(s, min(s + block, size), max(s - halo, 0), min(s + block + halo, size)) for s in range(0, size, block)]


def _as_cell_prob(window: Any) -> np.ndarray:
    """A (H, W) window of P(cell) as float32 in [0, 1]; uint8 maps (as `predict --uint8` stores) are divided by 255."""
    array = np.asarray(window)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32, copy=False)


def segment_blockwise(
    cell_prob: Any,
    params: SegmentationParams | None = None,
    block: int = 1024,
    halo: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Segment a (H, W) P(cell) map (a NumPy or Zarr array, read window by window) -> (H, W) uint32 labels 1..N.

    Each block of `block` x `block` pixels is segmented with `halo` pixels of context on every side
    (`segment_probabilities`, P(membrane) = 1 - P(cell)); only its inner part is kept. Two segments of
    neighbouring blocks are joined when, in the strip where one block's halo covers the other's inner part,
    each is the other's majority overlap; joins are resolved with scipy's connected components. With a halo
    of a few cell diameters the result agrees with segmenting the whole section at once (V_rand > 0.999 in the tests).
    `progress(done, total)` is called after each block.
    """
    height, width = int(cell_prob.shape[-2]), int(cell_prob.shape[-1])
    if len(cell_prob.shape) != 2:
        raise ValueError(f"segment_blockwise takes a (H, W) P(cell) map, got shape {tuple(cell_prob.shape)}")
    if block < 1 or halo < 0:
        raise ValueError(f"block must be >= 1 and halo >= 0 pixels, got block={block}, halo={halo}")
    p = params or SegmentationParams()
    rows, cols = _windows(height, block, halo), _windows(width, block, halo)
    out = np.zeros((height, width), dtype=np.int64)
    outer: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # block -> (outer labels, outer -> global id)
    offset, total = 0, len(rows) * len(cols)
    for i, (y0, y1, oy0, oy1) in enumerate(rows):
        for j, (x0, x1, ox0, ox1) in enumerate(cols):
            labels = segment_probabilities(_as_cell_prob(cell_prob[oy0:oy1, ox0:ox1]), p).astype(np.int64)
            inner = labels[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0]
            kept = np.unique(inner)
            to_global = np.zeros(int(labels.max()) + 1, dtype=np.int64)  # 0 = not in the inner part
            to_global[kept] = offset + np.arange(1, len(kept) + 1)
            offset += len(kept)
            out[y0:y1, x0:x1] = to_global[inner]
            outer[(i, j)] = (labels, to_global)
            if progress is not None:
                progress(i * len(cols) + j + 1, total)
    pairs = [_border_pairs(out, outer, rows, cols, b, (b[0] + di, b[1] + dj)) for b in outer for di, dj in _NEIGHBOURS]
    joined = np.concatenate([q for q in pairs if len(q)] or [np.zeros((0, 2), np.int64)])
    if len(joined):
        graph = coo_matrix((np.ones(len(joined)), (joined[:, 0], joined[:, 1])), shape=(offset + 1, offset + 1))
        _, component = connected_components(graph, directed=False)
        out = component[out] + 1
    return relabel_sequential(out)[0].astype(np.uint32)


_NEIGHBOURS = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1) if (di, dj) != (0, 0)]


def _border_pairs(
    out: np.ndarray,
    outer: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]],
    rows: list[tuple[int, int, int, int]],
    cols: list[tuple[int, int, int, int]],
    b: tuple[int, int],
    n: tuple[int, int],
) -> np.ndarray:
    """Global ID pairs (K, 2) to join: segments of block `b` (as its halo sees them) and of block `n` (its inner
    part) that are each other's majority overlap where b's halo covers n's inner part."""
    if n not in outer:
        return np.zeros((0, 2), np.int64)
    labels, to_global = outer[b]
    (_, _, oy0, oy1), (_, _, ox0, ox1) = rows[b[0]], cols[b[1]]
    (ny0, ny1, _, _), (nx0, nx1, _, _) = rows[n[0]], cols[n[1]]
    y0, y1, x0, x1 = max(oy0, ny0), min(oy1, ny1), max(ox0, nx0), min(ox1, nx1)
    if y0 >= y1 or x0 >= x1:
        return np.zeros((0, 2), np.int64)
    seen = labels[y0 - oy0 : y1 - oy0, x0 - ox0 : x1 - ox0].ravel()
    theirs = out[y0:y1, x0:x1].ravel()
    pair, count = np.unique(np.stack([seen, theirs], axis=1), axis=0, return_counts=True)
    seen_size = np.bincount(seen, minlength=len(to_global))
    their_ids, their_inverse = np.unique(theirs, return_inverse=True)
    their_size = np.bincount(their_inverse)
    mutual = (2 * count > seen_size[pair[:, 0]]) & (2 * count > their_size[np.searchsorted(their_ids, pair[:, 1])])
    mine = to_global[pair[:, 0]]
    keep = mutual & (mine > 0)
    return np.stack([mine[keep], pair[keep, 1]], axis=1)


__all__ = ["segment_blockwise"]
