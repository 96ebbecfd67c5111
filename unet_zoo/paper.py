"""The paper this zoo reproduces, its results, and how our scores are set beside them.

Ronneberger, Fischer & Brox (MICCAI 2015). `comparison_rows` and `format_comparison` are the one place
that lines our held-out ISBI 2012 scores up with the paper's Table 1 (model cards, `unet-zoo evaluate`,
`unet-zoo reproduce isbi`).
"""

from __future__ import annotations

import re
from typing import Any

PAPER = "Ronneberger, Fischer & Brox, U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015"
PAPER_URL = "https://arxiv.org/abs/1505.04597"

#: The paper's Table 1: the u-net row on the ISBI 2012 challenge test set, scored by the organisers
#: (lower is better). Our held-out scores are set beside these numbers on model cards and in `evaluate`.
PAPER_TABLE1: dict[str, float] = {"warping_error": 0.000353, "rand_error": 0.0382, "pixel_error": 0.0611}

HELD_OUT_NOTE = (
    "Ours: held-out ISBI 2012 training slices (the test labels were never released). "
    "Paper: u-net on the challenge test set, scored by the organisers (Table 1)."
)

#: (score key, label) of every ISBI score, in the order tables show them; the first three are Table 1's.
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


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(label, ours, paper) strings for every score in `metrics` or in the paper's Table 1."""
    rows = []
    for key, label in SCORE_LABELS:
        ours, paper = metrics.get(key), PAPER_TABLE1.get(key)
        if ours is None and paper is None:
            continue
        rows.append((label, format_score(ours), format_score(paper)))
    return rows


def format_comparison(metrics: dict[str, Any], without_tta: dict[str, Any] | None = None) -> str:
    """Markdown table of our scores beside the paper's Table 1, followed by `HELD_OUT_NOTE`.

    without_tta: scores of the same model without test-time augmentation, shown as an extra column.
    """
    if without_tta is None:
        lines = ["| metric | ours | paper (Table 1) |", "|---|---:|---:|"]
        lines += [f"| {label} | {ours} | {paper} |" for label, ours, paper in comparison_rows(metrics)]
    else:
        plain = {label: ours for label, ours, _ in comparison_rows(without_tta)}
        lines = ["| metric | ours, with TTA | ours, without TTA | paper (Table 1) |", "|---|---:|---:|---:|"]
        lines += [f"| {label} | {ours} | {plain.get(label, '-')} | {paper} |" for label, ours, paper in comparison_rows(metrics)]
    return "\n".join(lines) + "\n\n" + HELD_OUT_NOTE


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
    "HELD_OUT_NOTE",
    "PAPER",
    "PAPER_TABLE1",
    "PAPER_URL",
    "SCORE_LABELS",
    "comparison_rows",
    "format_comparison",
    "format_score",
    "parse_target",
    "target_results",
]
