import numpy as np

from unet_zoo.training.data import synthetic_cells


def test_synthetic_cells_are_binary_and_membranes_dark():
    images, labels = synthetic_cells(3, 48, seed=1)
    assert images.shape == labels.shape == (3, 48, 48) and images.dtype == labels.dtype == np.uint8
    assert set(np.unique(labels)) == {0, 1}
    assert 0.05 < (labels == 0).mean() < 0.6
    assert images[labels == 0].mean() < images[labels == 1].mean() - 50


def test_loss_balance_switches_the_class_frequency_term_of_the_weight_maps():
    from unet_zoo.training.data import load_training_data
    from unet_zoo.training.recipes import load_recipe

    recipe = load_recipe("tiny")
    paper = load_training_data(recipe)
    flat = load_training_data(recipe.with_overrides(loss={"balance": False, "w0": 0.0}))
    # Without the border term, w = w_c: class-frequency weights (two values) with balance, all 1 without.
    assert recipe.loss.balance is True
    assert np.all(flat.train_weights == 1.0)
    assert not np.allclose(paper.train_weights, 1.0)
    balanced = load_training_data(recipe.with_overrides(loss={"w0": 0.0}))
    assert len(np.unique(balanced.train_weights[0])) == 2
