"""The paper's ISBI 2012 results (Table 1) and how our held-out scores are set beside them.

`comparison_rows` and `format_comparison` are the one place that lines our held-out ISBI 2012 scores up with
the paper's Table 1 (`unet-zoo evaluate`, `unet-zoo reproduce isbi`); `TABLE1_CARD_FIELDS` is what a model card
of a checkpoint trained on ISBI 2012 says beside its scores (the data source ``"isbi2012"`` hands it to the card).
"""

from __future__ import annotations

from typing import Any

from unet_zoo.paper import comparison_markdown, score_rows

#: The paper's Table 1: the u-net row on the ISBI 2012 challenge test set, scored by the organisers
#: (lower is better). Our held-out scores are set beside these numbers on model cards and in `evaluate`.
PAPER_TABLE1: dict[str, float] = {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611}

HELD_OUT_NOTE = (
    "Ours: held-out ISBI 2012 training slices (the test labels were never released). "
    "Paper: u-net on the challenge test set, scored by the organisers (Table 1)."
)

#: The model card's fields for a checkpoint trained on ISBI 2012 (`unet_zoo.hub.card.CardInfo`): its scores
#: beside Table 1, with the held-out note under the table of all scores.
TABLE1_CARD_FIELDS: dict[str, Any] = {"reference_scores": PAPER_TABLE1, "reference_note": HELD_OUT_NOTE}


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, ours, paper) strings for every score in `metrics` or in the paper's Table 1."""
    return score_rows(metrics, PAPER_TABLE1)


def format_comparison(metrics: dict[str, Any], without_tta: dict[str, Any] | None = None) -> str:
    """Markdown table of our scores beside the paper's Table 1, followed by `HELD_OUT_NOTE`.

    without_tta: scores of the same model without test-time augmentation, shown as an extra column.
    """
    return comparison_markdown(metrics, without_tta, reference=PAPER_TABLE1, note=HELD_OUT_NOTE)


__all__ = ["HELD_OUT_NOTE", "PAPER_TABLE1", "TABLE1_CARD_FIELDS", "comparison_rows", "format_comparison"]
