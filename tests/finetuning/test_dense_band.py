"""Dense labels in fine-tuning: the pixels beside every label border are left out of the loss (loss.ignore_border)."""

from __future__ import annotations

import numpy as np
import pytest

from unet_zoo.data.files import labelled_arrays
from unet_zoo.training.data import border_band_mask, load_files_data, synthetic_cells
from unet_zoo.training.recipes import RecipeError, load_recipe


def test_band_mask_leaves_out_the_pixels_beside_borders_and_keeps_a_membrane_line():
    labels = np.ones((1, 40, 40), np.uint8)
    labels[0, :, 10:15] = 0  # a 5 px membrane
    labels[0, :, 30] = 0  # a 1 px membrane
    kept = border_band_mask(labels, 1)[0]
    row = kept[20]
    assert not row[9] and not row[10] and row[11] and row[13] and not row[14] and not row[15]  # the thick one
    assert row[30] and not row[29] and not row[31]  # the thin one keeps its line
    assert row[5] and row[20] and row[35]  # cell interiors
    assert border_band_mask(labels, 0).all()
    assert border_band_mask(labels, 2)[0].sum() < kept.sum()


def test_dense_finetune_data_trains_without_the_band_and_scores_every_held_out_pixel():
    images, cells = synthetic_cells(2, 96, seed=1)
    pairs = labelled_arrays(images, cells)
    recipe = load_recipe("finetune").with_overrides(data={"tile": 32})
    assert recipe.loss.ignore_border == 1  # the fine-tuning default
    data = load_files_data(recipe, labelled_arrays(images, cells))
    kept = border_band_mask(pairs.labels, 1)[..., : data.train_weights.shape[-1]]
    assert (data.train_weights[~kept] == 0).all() and (data.train_weights[kept] > 0).all()
    share = recipe.loss.membrane_share
    assert 0 < share < 1  # the default: each class carries its share of the loss
    for value, part in ((0, share), (1, 1 - share)):
        assert data.train_weights[kept & (data.train_labels == value)].sum() == pytest.approx(kept.sum() * part, rel=1e-4)
    assert (data.val_weights > 0).all() and not data.sparse  # held out: dense, the paper's weight maps
    plain = load_files_data(recipe.with_overrides(loss={"ignore_border": 0}), labelled_arrays(images, cells))
    assert (plain.train_weights > 0).all() and plain.train_weights.max() > 2  # the paper's border weights
    with pytest.raises(RecipeError, match="ignore_border"):
        load_recipe("finetune").with_overrides(loss={"ignore_border": -1})
