"""Held-out slices of a stack: a deterministic k-fold split into contiguous blocks."""

from __future__ import annotations

import numpy as np


def split_slices(num_slices: int = 30, k: int = 5, fold: int = 4) -> tuple[list[int], list[int]]:
    """Deterministic k-fold split of `num_slices` sections into contiguous blocks.

    Neighbouring EM sections (50 nm apart) look alike, so a random split would leak; instead the
    stack is cut into `k` contiguous blocks (sizes differ by at most one, as numpy.array_split) and
    block `fold` is the validation set. The default (30, 5, 4) validates on slices 24..29 and trains
    on 0..23. Returns (train indices, validation indices), both sorted.
    """
    if num_slices < 2:
        raise ValueError(f"need at least 2 slices to split, got num_slices={num_slices}")
    if not 2 <= k <= num_slices:
        raise ValueError(f"k must be between 2 and num_slices={num_slices}, got k={k}")
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1} for k={k}, got fold={fold}")
    blocks = np.array_split(np.arange(num_slices), k)
    val = blocks[fold].tolist()
    train = [i for i in range(num_slices) if i not in set(val)]
    return train, val


__all__ = ["split_slices"]
