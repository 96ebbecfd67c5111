"""Synthetic probability maps for the segmentation tests: smoothed ground truth of generated cells."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from unet_zoo.training.data import synthetic_cells


def probabilities_of(labels: np.ndarray, sigma: float = 1.0, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """(2, H, W) softmax-like probabilities (0 = membrane, 1 = cell) of a (H, W) 1 = cell label, blurred and noisy."""
    rng = np.random.default_rng(seed)
    cell = ndi.gaussian_filter(labels.astype(np.float32), sigma) + rng.normal(0, noise, labels.shape)
    cell = np.clip(cell, 0, 1).astype(np.float32)
    return np.stack([1 - cell, cell])


@pytest.fixture(scope="session")
def cells() -> tuple[np.ndarray, np.ndarray]:
    """One synthetic 128x128 slice: (image uint8, label 1 = cell / 0 = membrane)."""
    images, labels = synthetic_cells(1, 128, seed=3)
    return images[0], labels[0]
