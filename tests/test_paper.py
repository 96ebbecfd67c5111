"""unet_zoo.paper and unet_zoo.checkpoint_names: facts defined once and shared by cards, evaluation and the Hub."""

from __future__ import annotations

from unet_zoo import cards, evaluation, hub, reproduce
from unet_zoo.checkpoint_names import VARIANT_RECIPES, variant_of
from unet_zoo.paper import PAPER_TABLE1


def test_table1_is_defined_once():
    assert cards.PAPER_METRICS is PAPER_TABLE1 and evaluation.PAPER_TABLE1 is PAPER_TABLE1
    assert set(PAPER_TABLE1) == {"warping_error", "rand_error", "pixel_error"}
    assert all(0 < v < 0.1 for v in PAPER_TABLE1.values())


def test_variant_of_a_checkpoint_name():
    assert reproduce.VARIANT_RECIPES is VARIANT_RECIPES
    for variant, checkpoint in VARIANT_RECIPES.items():
        assert variant_of(checkpoint) == variant
    assert variant_of("no-such-checkpoint") is None


def test_unpublished_hint_names_the_training_command(monkeypatch):
    monkeypatch.setattr(hub, "source_cards_dir", lambda: None)
    hint = hub.unpublished_hint("isbi-small")
    assert "unet-zoo reproduce isbi --variant small" in hint and "cards/isbi-small" in hint
    assert "unet-zoo reproduce isbi --recipe isbi-small-cpu" in hint
    from unet_zoo.recipes import load_recipe

    for checkpoint in VARIANT_RECIPES.values():  # the CPU recipe the hint names exists and trains that checkpoint
        assert load_recipe(f"{checkpoint}-cpu").recipe.checkpoint == checkpoint
    assert hub.unpublished_hint("no-such-checkpoint") == ""
