"""unet_zoo.training.run_card: what a training run says on its card."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.run_card import checkpoint_name, recipe_card_fields, run_card_data


def _result(recipe, source="synthetic (8 slices of 64 px)"):
    """The parts of a TrainResult the card reads: a run of `recipe` on 6 training and 2 held-out slices."""
    data = SimpleNamespace(val_slices=[6, 7], source=source, train_images=np.zeros((6, 64, 64), np.uint8), pixel_size=None)
    return SimpleNamespace(
        recipe=recipe, data=data, step=3, world_size=1, precision="fp32", seconds=1.25, init_from=None, run_dir=Path(".")
    )


def test_checkpoint_name_is_the_recipes_published_name():
    assert checkpoint_name(load_recipe("isbi-small-cpu")) == "isbi-small"
    assert checkpoint_name(load_recipe("tiny")) == "tiny"


def test_run_card_data_describes_the_run_and_its_recipe():
    recipe = load_recipe("tiny")
    card = run_card_data(_result(recipe), "test CPU", updates={"dataset": "my data"})
    training = card["training"]
    assert training["recipe"].startswith("recipes/tiny.toml") and training["hardware"] == "test CPU"
    assert training["held_out"] == "slices 6-7 of the synthetic training stack (not trained on)"
    assert training["steps"] == 3 and training["tiles_seen"] == 3 * recipe.train.batch_size
    assert training["dataset"] == "my data"  # updates replace lines of the training section
    assert training["deviations"] == recipe.recipe.deviations and card["deviations"] == list(recipe.recipe.deviations)
    assert card["checkpoint_name"] is None  # "tiny" is no published name: the card's snippet loads the folder


def test_a_published_name_goes_into_the_card_and_targets_are_checked():
    recipe = load_recipe("isbi-small-cpu")
    card = run_card_data(_result(recipe, "ISBI 2012 (/data)"), "test CPU", {"rand_error": 0.01})
    assert card["checkpoint_name"] == "isbi-small"
    assert card["training"]["held_out"] == "slices 6-7 of the ISBI 2012 training stack (not trained on)"
    fields = recipe_card_fields(recipe.with_overrides(recipe={"targets": {"rand_error": "<= 0.02"}}), {"rand_error": 0.01})
    assert fields["targets"] and "met" in fields["targets"][0]
