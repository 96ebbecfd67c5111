"""The trainer's data: the slices, labels and loss weight maps of a recipe's data source, split into
training and held-out slices, and the fixed held-out tiles its validation curve is measured on.

    data = load_training_data(load_recipe("isbi-small"))   # ISBI 2012, or generated cells for "synthetic"

A named source (``"isbi2012"``) is read through `unet_zoo.data.sources`; its weight maps (paper eq. 2) are cached
under `weight_map_cache_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.data.files import LabelledDataError, LabelledImages, load_labelled_images
from unet_zoo.data.sources import load_source
from unet_zoo.data.split import split_slices
from unet_zoo.data.weight_maps import weight_maps_for_stack
from unet_zoo.models.provenance import provenance_of
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
    held_out: str = ""  # what was held out, in words ("" = the val_slices of the source)
    pixel_size: float | None = None  # nm per pixel of the arrays above (after any resampling); None = not known
    description: dict[str, Any] | None = None  # source = "files": files with sha256, shapes, label form (for the card)
    sparse: bool = False  # scribbles: weight 0 = not labelled; val_weights > 0 marks the held-out labelled pixels


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


def _labelled(recipe: Recipe, images: str, labels: str, held_out: bool = False) -> LabelledImages:
    """Read a recipe's images and labels; held-out labels of scribble training data may be dense ("auto")."""
    d = recipe.data
    form = "auto" if held_out and d.label_form == "scribbles" else d.label_form
    return load_labelled_images(images, labels, foreground=d.foreground, label_form=form, boundary_width=d.boundary_width)


def border_band_mask(labels: np.ndarray, width: int) -> np.ndarray:
    """(S, H, W) bool: the pixels of dense labels (S, H, W) (0 = membrane, > 0 = cell) that stay in the loss when
    `width` px on each side of every membrane/cell border are left out: membrane pixels whose (2 width + 1)^2
    neighbourhood is all membrane or that lie on the membranes' centre line (so thin membranes keep a line), and
    cell pixels whose neighbourhood is all cell. width 0: every pixel."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    cell = np.asarray(labels) > 0
    if width <= 0:
        return np.ones(cell.shape, bool)
    structure = np.ones((2 * width + 1, 2 * width + 1), bool)
    kept = np.zeros(cell.shape, bool)
    for i, c in enumerate(cell):
        membrane = ~c
        core = ndimage.binary_erosion(membrane, structure, border_value=1) | skeletonize(membrane)
        kept[i] = core | ndimage.binary_erosion(c, structure, border_value=1)
    return kept


def _resample_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from skimage.transform import resize

    if mask.shape == shape:
        return mask
    return resize(mask, shape, order=0, anti_aliasing=False, preserve_range=True).astype(bool)


def _resample(pairs: LabelledImages, pixel_size: float | None, target: float) -> tuple[LabelledImages, float | None]:
    """`pairs` rescaled from `pixel_size` to `target` nm/px (images order 1, labels order 1 thresholded at 0.5;
    scribbles nearest neighbour, so strokes stay strokes)."""
    from skimage.transform import resize

    if not target or pixel_size is None or abs(pixel_size / target - 1) < 0.02:
        return pairs, pixel_size
    factor = pixel_size / target
    s, h, w = pairs.images.shape
    shape = (s, max(1, round(h * factor)), max(1, round(w * factor)))
    images = resize(pairs.images.astype(np.float32), shape, order=1, anti_aliasing=factor < 1, preserve_range=True)
    pairs.images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    if pairs.labelled is not None:
        nearest = {"order": 0, "anti_aliasing": False, "preserve_range": True}
        pairs.labels = resize(pairs.labels, shape, **nearest).astype(np.uint8)
        pairs.labelled = resize(pairs.labelled, shape, **nearest).astype(bool)
        return pairs, target
    labels = resize(pairs.labels.astype(np.float32), shape, order=1, anti_aliasing=False) >= 0.5
    pairs.labels = labels.astype(np.uint8)
    return pairs, target


def sparse_weights(labels: np.ndarray, labelled: np.ndarray, membrane_share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Loss targets and weights for scribbles: masked, class-weighted cross-entropy.

    labels: (S, H, W) uint8 1 = cell, 0 = membrane where `labelled` (S, H, W) bool. Returns (labels, weights):
    weights 0 off the strokes and n s_c / n_c on the n_c labelled pixels of class c, where s_c is the class's
    share of the loss (`membrane_share` for membrane, the rest for cell; 0.5: both classes weigh the same) and
    the weights average 1 over the labelled pixels; labels off the strokes take the class of the
    nearest stroke, so a tile's deformation (labels nearest-neighbour, weights bilinear) never gives a stroke's
    rim the other class."""
    from scipy import ndimage

    labels = np.asarray(labels).astype(np.uint8)
    labelled = np.asarray(labelled, bool)
    weights = np.zeros(labels.shape, np.float32)
    total = int(labelled.sum())
    for value, share in ((0, membrane_share), (1, 1 - membrane_share)):
        count = int((labelled & (labels == value)).sum())
        if count:
            weights[labelled & (labels == value)] = total * share / count
    filled = labels.copy()
    for i in range(len(labels)):
        if labelled[i].any() and not labelled[i].all():
            _, (iy, ix) = ndimage.distance_transform_edt(~labelled[i], return_indices=True)
            filled[i] = labels[i][iy, ix]
    return filled, weights


def scribble_scores(probabilities: np.ndarray, labels: np.ndarray, labelled: np.ndarray) -> dict[str, float]:
    """Scores of (S, H, W) P(cell) on the labelled pixels of scribbles (labels 1 = cell where `labelled`):
    ``membrane_accuracy`` and ``cell_accuracy`` (share of each class's stroke pixels on the right side of 0.5),
    their mean ``stroke_accuracy``, ``stroke_cross_entropy`` (class-balanced, nats) and ``labelled_pixels``."""
    p = np.asarray(probabilities, np.float64)[labelled]
    y = np.asarray(labels)[labelled].astype(bool)
    if not y.any() or y.all():
        raise ValueError("the held-out strokes need both classes (membrane and cell) to be scored")
    eps = 1e-6
    membrane, cell = float((p[~y] < 0.5).mean()), float((p[y] >= 0.5).mean())
    ce = 0.5 * float(-np.log(np.clip(p[y], eps, 1)).mean()) + 0.5 * float(-np.log(np.clip(1 - p[~y], eps, 1)).mean())
    return {
        "stroke_accuracy": (membrane + cell) / 2,
        "membrane_accuracy": membrane,
        "cell_accuracy": cell,
        "stroke_cross_entropy": ce,
        "labelled_pixels": int(labelled.sum()),
    }


def hold_out_region(images: np.ndarray, tile: int) -> int:
    """Width in pixels of the region held out at the right of every slice when there are too few slices to hold
    one out: a quarter of the width, but at least `tile` (the validation tiles' size) while that leaves half."""
    width = images.shape[-1]
    return max(width // 4, min(tile, width // 2))


def load_files_data(recipe: Recipe, pairs: LabelledImages | None = None, val_pairs: LabelledImages | None = None) -> TrainingData:
    """`source = "files"`: your images and labels (`unet_zoo.data.files`), resampled to ``data.resample_to`` nm/px,
    with ``data.val_images`` / ``data.val_labels`` held out, else the last fifth of >= 3 slices, else the right
    `hold_out_region` of each slice. Weight maps are cached by content hash under `weight_map_cache_dir`.

    pairs / val_pairs: data already read (`unet_zoo.data.files.labelled_arrays`), used instead of the recipe's
    paths. Scribbles train only on the slices with strokes, held out the same way among those slices, with
    `sparse_weights` (masked, class-balanced) instead of the paper's border weights, which need whole cells.
    Dense labels with ``loss.ignore_border`` > 0 train the same way on `border_band_mask`'s pixels (computed at the
    labels' own pixel size, before resampling); their held-out part keeps every pixel."""
    d = recipe.data
    pairs = pairs if pairs is not None else _labelled(recipe, d.images, d.labels)
    size = d.pixel_size or pairs.pixel_size
    # dense labels: the pixels beside label borders are left out of the training loss, at the labels' own pixels
    dense_band = pairs.labelled is None and recipe.loss.ignore_border > 0
    kept = border_band_mask(pairs.labels, recipe.loss.ignore_border) if dense_band else None
    pairs, size = _resample(pairs, size, d.resample_to)
    if kept is not None:
        kept = _resample_mask(kept, pairs.labels.shape)
    description = {"train": pairs.describe(), "train_summary": pairs.summary()}
    images, labels, labelled = pairs.images, pairs.labels, pairs.labelled
    slice_ids = list(range(len(images)))
    if labelled is not None:  # scribbles: only the slices with strokes
        slice_ids = [i for i in slice_ids if labelled[i].any()]
        images, labels, labelled = images[slice_ids], labels[slice_ids], labelled[slice_ids]
    train_m = val_m = labelled
    if val_pairs is not None or d.val_images:
        val = val_pairs if val_pairs is not None else _labelled(recipe, d.val_images, d.val_labels, held_out=True)
        val, _ = _resample(val, d.pixel_size or val.pixel_size or size, d.resample_to)
        description["held_out"] = val.describe()
        description["held_out_summary"] = val.summary()
        train_x, train_y, val_x, val_y, val_m = images, labels, val.images, val.labels, val.labelled
        val_slices = list(range(len(val_x)))
        held_out = f"{d.val_images or 'the given held-out arrays'} ({len(val_x)} slices)"
    elif len(images) >= 3:
        n = max(1, len(images) // 5)
        train_x, train_y, val_x, val_y = images[:-n], labels[:-n], images[-n:], labels[-n:]
        kept = None if kept is None else kept[:-n]
        if labelled is not None:
            train_m, val_m = labelled[:-n], labelled[-n:]
        val_slices = slice_ids[-n:]
        held_out = f"the last {n} of {len(images)} slices ({', '.join(map(str, val_slices))}), not trained on"
    else:
        region = hold_out_region(images, d.tile)
        cut = images.shape[-1] - region
        train_x, train_y, val_x, val_y = images[..., :cut], labels[..., :cut], images[..., cut:], labels[..., cut:]
        kept = None if kept is None else kept[..., :cut]
        if labelled is not None:
            train_m, val_m = labelled[..., :cut], labelled[..., cut:]
        val_slices = slice_ids
        held_out = f"the right {region} px (columns {cut}-{images.shape[-1] - 1}) of every slice, not trained on"
    if labelled is not None:
        _check_strokes(train_y, train_m, val_y, val_m, held_out, given_val=bool(val_pairs is not None or d.val_images))
    cache = weight_map_cache_dir()
    loss = recipe.loss

    def targets(y: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if mask is not None:
            return sparse_weights(y, mask)
        y = np.ascontiguousarray(y)
        return y, weight_maps_for_stack(y, loss.w0, loss.sigma, cache_dir=cache, balance=loss.balance)

    mask = kept if kept is not None else train_m  # masked: strokes, or dense labels without the border bands
    if mask is not None:
        train_y, train_w = sparse_weights(train_y, mask, loss.membrane_share)
    else:
        train_y, train_w = targets(train_y, None)
    val_y, val_w = targets(val_y, val_m)  # held-out strokes weigh both classes alike: comparable across shares
    files = ", ".join(Path(f).name for f in pairs.files)
    return TrainingData(
        np.ascontiguousarray(train_x),
        np.ascontiguousarray(train_y),
        train_w,
        np.ascontiguousarray(val_x),
        np.ascontiguousarray(val_y),
        val_w,
        val_slices,
        f"your data ({files})",
        held_out=held_out,
        pixel_size=size,
        description=description,
        sparse=val_m is not None,
    )


def _check_strokes(
    train_y: np.ndarray,
    train_m: np.ndarray | None,
    val_y: np.ndarray,
    val_m: np.ndarray | None,
    held_out: str,
    given_val: bool,
) -> None:
    """Refuse scribbles that leave the training part without strokes of both classes, or a held-out part of
    scribbles without them (nothing to score)."""
    assert train_m is not None
    for value, name in ((0, "membrane (1)"), (1, "cell (2)")):
        if not (train_m & (train_y == value)).any():
            where = "every stroke" if not train_m.any() else f"every {name.split()[0]} stroke"
            raise LabelledDataError(
                f"{where} lies in the held-out part ({held_out}); paint {name} strokes outside it too"
                + ("" if given_val else ", or pass dense held-out labels (--val-images/--val-labels)")
            )
    if val_m is not None:
        for value, name in ((0, "membrane (1)"), (1, "cell (2)")):
            if not (val_m & (val_y == value)).any():
                raise LabelledDataError(
                    f"the held-out part ({held_out}) has no {name} stroke to score on; paint a few there, or pass "
                    "dense held-out labels (--val-images/--val-labels)"
                )


def load_training_data(recipe: Recipe, data_dir: str | Path | None = None) -> TrainingData:
    """Images, labels and weight maps of the recipe's data source, split into train / held-out slices."""
    if recipe.data.source == "files":
        return load_files_data(recipe)
    if recipe.data.source == "synthetic":
        images, labels = synthetic_cells(recipe.data.synthetic_slices, recipe.data.synthetic_size, recipe.train.seed)
        source = f"synthetic ({recipe.data.synthetic_slices} slices of {recipe.data.synthetic_size} px)"
        cache = None
        pixel_size = recipe.data.pixel_size or None
    else:  # a named source (unet_zoo.data.sources): "isbi2012", registered by the ISBI 2012 experiment
        stack = load_source(recipe.data.source, data_dir or recipe.data.data_dir or None)
        images, labels = stack.images, stack.labels
        source = stack.description
        cache = weight_map_cache_dir()
        pixel_size = recipe.data.pixel_size or stack.pixel_size
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
        pixel_size=pixel_size,
    )


def validation_tiles(
    model: nn.Module, data: TrainingData, tile: int, count: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed, un-augmented validation tiles: the centre of held-out slices (cycled), mirror-padded for
    valid-convolution models. Returns x (n, 1, tile, tile) float32 in [0, 1], y (n, o, o) int64, w (n, o, o)."""
    out = model.output_size(tile)  # type: ignore[operator]  # a zoo model's method, typed by nn.Module as Tensor | Module
    if out is None:
        raise ValueError(f"tile {tile} is not a valid input size for {provenance_of(model).label}")
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
    "hold_out_region",
    "load_files_data",
    "load_training_data",
    "scribble_scores",
    "sparse_weights",
    "synthetic_cells",
    "validation_tiles",
    "weight_map_cache_dir",
]
