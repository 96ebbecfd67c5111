"""unet_zoo.experiments.isbi2012.paper (the paper's Table 1 beside our scores), unet_zoo.paper and
unet_zoo.models.checkpoint_names: facts defined once and shared by cards, evaluation and the Hub."""

from __future__ import annotations

from unet_zoo.data.sources import source_card_fields
from unet_zoo.experiments.isbi2012 import reproduce
from unet_zoo.experiments.isbi2012.paper import (
    HELD_OUT_NOTE,
    PAPER_TABLE1,
    TABLE1_CARD_FIELDS,
    comparison_rows,
    format_comparison,
)
from unet_zoo.hub import sources as hub
from unet_zoo.models.checkpoint_names import VARIANT_RECIPES, variant_of
from unet_zoo.paper import comparison_markdown, format_score


def test_table1_holds_the_papers_three_scores():
    assert set(PAPER_TABLE1) == {"warping_error", "rand_error", "pixel_error"}
    assert all(0 < v < 0.1 for v in PAPER_TABLE1.values())


def test_comparison_with_paper():
    metrics = {"rand_error": 0.05, "pixel_error": 0.07, "vrand_thinned": 0.97, "vinfo_thinned": 0.98}
    rows = {name: (ours, paper) for name, ours, paper in comparison_rows(metrics)}
    assert rows["Warping error"] == ("-", "0.000353") and PAPER_TABLE1["warping_error"] == 0.000353
    assert rows["Rand error (1 - V_rand, 2012 definition)"] == ("0.0500", "0.0382")
    assert rows["Pixel error (1 - best pixel F-score)"] == ("0.0700", "0.0611")
    assert "V_rand" not in rows  # scores neither measured nor in Table 1 are left out
    text = format_comparison(metrics)
    assert "0.0382" in text and "held-out" in text and "never released" in text and text.endswith(HELD_OUT_NOTE)


def test_comparison_with_and_without_tta():
    text = format_comparison({"rand_error": 0.05}, {"rand_error": 0.07})
    row = next(line for line in text.splitlines() if line.startswith("| Rand error"))
    assert row == "| Rand error (1 - V_rand, 2012 definition) | 0.0500 | 0.0700 | 0.0382 |"


def test_scores_without_reference_have_no_paper_column():
    text = comparison_markdown({"rand_error": 0.05}, {"rand_error": 0.07})
    assert "Table 1" not in text and text.splitlines()[-1] == "| Rand error (1 - V_rand, 2012 definition) | 0.0500 | 0.0700 |"


def test_the_isbi_data_source_hands_table1_to_model_cards():
    assert source_card_fields("isbi2012") == TABLE1_CARD_FIELDS
    assert source_card_fields("synthetic") == {} and source_card_fields("files") == {}


def test_format_score():
    assert format_score(None) == "-" and format_score(0.00133) == "0.001330" and format_score(0.98212) == "0.9821"


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
    from unet_zoo.training.recipes import load_recipe

    for checkpoint in VARIANT_RECIPES.values():  # the CPU recipe the hint names exists and trains that checkpoint
        assert load_recipe(f"{checkpoint}-cpu").recipe.checkpoint == checkpoint
    assert hub.unpublished_hint("no-such-checkpoint") == ""


def test_targets_are_parsed_and_checked_against_scores():
    import pytest

    from unet_zoo.paper import parse_target, target_results

    assert parse_target("rand_error", "<= 0.0382") == ("<=", 0.0382)
    assert parse_target("vrand_thinned", ">=0.98") == (">=", 0.98)
    with pytest.raises(ValueError, match="unknown score 'rand'"):
        parse_target("rand", "<= 1")
    with pytest.raises(ValueError, match="must read '<= number' or '>= number'"):
        parse_target("rand_error", "< 0.1")
    lines = target_results(
        {"rand_error": "<= 0.0382", "vrand_thinned": ">= 0.980", "vinfo": ">= 0.5"},
        {"rand_error": 0.0957, "vrand_thinned": 0.9817},
    )
    assert lines == [
        "Rand error (1 - V_rand, 2012 definition) <= 0.0382: missed by 0.0575 (0.0957)",
        "V_rand after thinning (leaderboard) >= 0.98: met (0.9817)",
        "V_info >= 0.5: not measured",
    ]
