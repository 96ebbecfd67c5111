"""Agglomeration: merge neighbouring segments whose shared boundary has a low mean membrane probability."""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage import graph
from skimage.segmentation import relabel_sequential


def _combined_boundary(rag: Any, src: int, dst: int, n: int) -> dict[str, float]:
    """merge_hierarchical's weight_func: the boundary of the merged node with `n` is the union of both boundaries,
    so its mean is the pixel-count-weighted mean of the two."""
    default = {"weight": 0.0, "count": 0}
    a, b = rag[src].get(n, default), rag[dst].get(n, default)
    count = a["count"] + b["count"]
    return {"count": count, "weight": (a["count"] * a["weight"] + b["count"] * b["weight"]) / count}


def _nothing(rag: Any, src: int, dst: int) -> None:
    """merge_hierarchical's merge_func: node data needs no update (the boundaries are merged by `_combined_boundary`)."""


def merge_segments(labels: np.ndarray, membrane_prob: np.ndarray, threshold: float) -> np.ndarray:
    """Merge segments of a (H, W) label image (1..N, no 0) hierarchically, lowest boundary first -> int32 labels 1..M.

    The weight of two touching segments is the mean P(membrane) along their shared boundary
    (skimage.graph.rag_boundary, both sides' pixels); pairs below `threshold` merge, one at a time, with the
    merged boundaries' means recomputed (skimage.graph.merge_hierarchical).
    """
    labels = np.asarray(labels)
    if labels.max() <= 1:
        return relabel_sequential(labels.astype(np.int32))[0]
    rag = graph.rag_boundary(labels, np.asarray(membrane_prob, dtype=np.float64), connectivity=1)
    merged = graph.merge_hierarchical(
        labels,
        rag,
        thresh=threshold,
        rag_copy=False,
        in_place_merge=True,
        merge_func=_nothing,
        weight_func=_combined_boundary,
    )
    return relabel_sequential(merged.astype(np.int32) + 1)[0]


__all__ = ["merge_segments"]
