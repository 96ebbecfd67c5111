"""The trainer's data: the slices, labels and loss weight maps of a recipe's data source, split into
training and held-out slices, and the fixed held-out tiles its validation curve is measured on.

    data = load_training_data(load_recipe("isbi-small"))   # ISBI 2012, or generated cells for "synthetic"

Weight maps (paper eq. 2) of the ISBI data are cached under `weight_map_cache_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unet_zoo.data.isbi import load_isbi, split_slices
from unet_zoo.data.weight_maps import weight_maps_for_stack
from unet_zoo.training.recipes import Recipe
from unet_zoo.utils.files import cache_dir


@dataclass
class TrainingData:
    """Slices for one run. Images (S, H, W) uint8; labels (S, H, W) uint8 1 = cell, 0 = membrane;
    weights (S, H, W) float32 loss weight maps (paper eq. 2); `val_slices`: indices of the held-out slices."""

    train_images: np.ndarray
    train_labels: np.ndarray
    train_weights: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    val_weights: np.ndarray
    val_slices: list[int]
    source: str = ""


def synthetic_cells(num_slices: int = 8, size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Generated EM-like slices: Voronoi cells (bright) separated by 2-px membranes (dark), noisy.

    Returns images (S, size, size) uint8 and labels (S, size, size) uint8 with 1 = cell, 0 = membrane.
    For tests and smoke runs only.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    images = np.empty((num_slices, size, size), np.uint8)
    labels = np.empty((num_slices, size, size), np.uint8)
    for i in range(num_slices):
        seeds = np.ones((size, size), bool)
        points = rng.integers(0, size, (max(4, size * size // 200), 2))
        seeds[points[:, 0], points[:, 1]] = False
        _, (iy, ix) = ndimage.distance_transform_edt(seeds, return_indices=True)
        cells = iy * size + ix
        border = np.zeros((size, size), bool)
        border[:-1] |= cells[:-1] != cells[1:]
        border[:, :-1] |= cells[:, :-1] != cells[:, 1:]
        labels[i] = ~ndimage.binary_dilation(border)
        image = np.where(labels[i] == 1, 170.0, 60.0) + rng.normal(0, 25, (size, size))
        images[i] = np.clip(ndimage.gaussian_filter(image, 0.7), 0, 255).astype(np.uint8)
    return images, labels


def weight_map_cache_dir() -> Path:
    """Where weight maps are cached: ``$XDG_CACHE_HOME/unet_zoo/weight_maps`` (~/.cache/...)."""
    return cache_dir("weight_maps")


def load_training_data(recipe: Recipe, data_dir: str | Path | None = None) -> TrainingData:
    """Images, labels and weight maps of the recipe's data source, split into train / held-out slices."""
    if recipe.data.source == "synthetic":
        images, labels = synthetic_cells(recipe.data.synthetic_slices, recipe.data.synthetic_size, recipe.train.seed)
        source = f"synthetic ({recipe.data.synthetic_slices} slices of {recipe.data.synthetic_size} px)"
        cache = None
    else:
        data = load_isbi(data_dir or recipe.data.data_dir or None)
        images, labels = data.images, data.labels
        source = f"ISBI 2012 ({data.data_dir})"
        cache = weight_map_cache_dir()
    train_idx, val_idx = split_slices(len(images), k=recipe.data.k, fold=recipe.data.fold)
    weights = weight_maps_for_stack(labels, recipe.loss.w0, recipe.loss.sigma, cache_dir=cache, balance=recipe.loss.balance)
    return TrainingData(
        images[train_idx],
        labels[train_idx],
        weights[train_idx],
        images[val_idx],
        labels[val_idx],
        weights[val_idx],
        list(val_idx),
        source,
    )


def validation_tiles(
    model: nn.Module, data: TrainingData, tile: int, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed, un-augmented validation tiles: the centre of held-out slices (cycled), mirror-padded for
    valid-convolution models. Returns x (n, 1, tile, tile) float32 in [0, 1], y (n, o, o) int64, w (n, o, o)."""
    out = model.output_size(tile)  # type: ignore[operator]  # a zoo model's method, typed by nn.Module as Tensor | Module
    if out is None:
        raise ValueError(f"tile {tile} is not a valid input size for {getattr(model, 'model_name', 'the model')}")
    margin = (tile - out) // 2
    xs, ys, ws = [], [], []
    for i in range(count):
        s = i % len(data.val_images)
        image = data.val_images[s]
        h, w = image.shape
        if out > min(h, w):
            raise ValueError(f"validation slices ({h}x{w}) are smaller than the model's {out}-px output tile")
        top, left = (h - out) // 2, (w - out) // 2
        padded = np.pad(image, margin, mode="reflect") if margin else image
        xs.append(padded[top : top + tile, left : left + tile])
        ys.append(data.val_labels[s, top : top + out, left : left + out])
        ws.append(data.val_weights[s, top : top + out, left : left + out])
    x = torch.from_numpy(np.stack(xs)).float().div_(255)[:, None]
    return x, torch.from_numpy(np.stack(ys)).long(), torch.from_numpy(np.stack(ws)).float()


__all__ = [
    "TrainingData",
    "load_training_data",
    "synthetic_cells",
    "validation_tiles",
    "weight_map_cache_dir",
]
