"""The paper this zoo follows, the scores we report, and how they are set beside reference scores.

Ronneberger, Fischer & Brox (MICCAI 2015). The paper's ISBI 2012 results (Table 1) belong to that experiment:
`unet_zoo.experiments.isbi2012.paper`. `score_rows` and `comparison_markdown` table any held-out scores, beside
reference scores when given (model cards, `unet-zoo evaluate`); `parse_target` and `target_results` check a
recipe's targets.
"""

from __future__ import annotations

import re
from typing import Any

PAPER = "Ronneberger, Fischer & Brox, U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015"
PAPER_URL = "https://arxiv.org/abs/1505.04597"

#: (score key, label) of every held-out score (`unet_zoo.evaluation`), in the order tables show them; the first
#: three are the paper's Table 1 scores.
SCORE_LABELS: tuple[tuple[str, str], ...] = (
    ("warping_error", "Warping error"),
    ("rand_error", "Rand error (1 - V_rand, 2012 definition)"),
    ("pixel_error", "Pixel error (1 - best pixel F-score)"),
    ("vrand_thinned", "V_rand after thinning (leaderboard)"),
    ("vinfo_thinned", "V_info after thinning (leaderboard)"),
    ("vrand", "V_rand"),
    ("vinfo", "V_info"),
    ("iou", "IoU of cells (threshold 0.5)"),
    ("dice", "Dice of cells (threshold 0.5)"),
)


def format_score(value: float | None) -> str:
    """A score as tables print it: 6 decimals below 0.01 (warping errors), else 4; "-" when missing."""
    if value is None:
        return "-"
    return f"{value:.6f}" if 0 < abs(value) < 0.01 else f"{value:.4f}"


def score_rows(metrics: dict[str, Any], reference: dict[str, float] | None = None) -> list[tuple[str, str, str]]:
    """(label, ours, reference) strings for every score in `metrics` or in `reference` ("-" where missing)."""
    reference = reference or {}
    rows = []
    for key, label in SCORE_LABELS:
        ours, theirs = metrics.get(key), reference.get(key)
        if ours is None and theirs is None:
            continue
        rows.append((label, format_score(ours), format_score(theirs)))
    return rows


def comparison_markdown(
    metrics: dict[str, Any],
    without_tta: dict[str, Any] | None = None,
    *,
    reference: dict[str, float] | None = None,
    note: str | None = None,
) -> str:
    """Markdown table of held-out scores, beside the paper's `reference` scores (a "paper (Table 1)" column) when
    given, followed by `note` when given.

    without_tta: scores of the same model without test-time augmentation, shown as an extra column.
    """
    rows = score_rows(metrics, reference)
    paper = ["paper (Table 1)"] if reference else []
    if without_tta is None:
        header = ["metric", "ours", *paper]
        body = [[label, ours, *([theirs] if reference else [])] for label, ours, theirs in rows]
    else:
        plain = {label: ours for label, ours, _ in score_rows(without_tta)}
        header = ["metric", "ours, with TTA", "ours, without TTA", *paper]
        body = [[label, ours, plain.get(label, "-"), *([theirs] if reference else [])] for label, ours, theirs in rows]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + (f"\n\n{note}" if note else "")


# --- targets ----------------------------------------------------------------------------------------

_TARGET = re.compile(r"^\s*(<=|>=)\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*$")


def parse_target(score: str, bound: str) -> tuple[str, float]:
    """A recipe's target for `score`, e.g. ``("<=", 0.0382)`` from ``"<= 0.0382"``.

    Raises ValueError for a score that is not one of `SCORE_LABELS` or a bound not of the form
    ``"<= number"`` / ``">= number"``.
    """
    names = [key for key, _ in SCORE_LABELS]
    if score not in names:
        raise ValueError(f"unknown score {score!r} in targets; scores: {', '.join(names)}")
    match = _TARGET.match(str(bound))
    if match is None:
        raise ValueError(f"target {score} = {bound!r} must read '<= number' or '>= number', e.g. '<= 0.0382'")
    return match.group(1), float(match.group(2))


def target_results(targets: dict[str, str], scores: dict[str, Any]) -> list[str]:
    """One line per target: its bound, the held-out score, and whether it is met or by how much it is missed.

    targets: score -> bound (``"<= 0.0382"``), as in a recipe's ``[recipe] targets``; scores: held-out scores.
    """
    labels = dict(SCORE_LABELS)
    lines = []
    for score, bound in targets.items():
        op, value = parse_target(score, bound)
        got = scores.get(score)
        if got is None:
            lines.append(f"{labels[score]} {op} {value:g}: not measured")
            continue
        met = got <= value if op == "<=" else got >= value
        verdict = "met" if met else f"missed by {abs(got - value):.{4 if abs(got - value) >= 1e-3 else 6}f}"
        lines.append(f"{labels[score]} {op} {value:g}: {verdict} ({format_score(got)})")
    return lines


__all__ = [
    "PAPER",
    "PAPER_URL",
    "SCORE_LABELS",
    "comparison_markdown",
    "format_score",
    "parse_target",
    "score_rows",
    "target_results",
]
