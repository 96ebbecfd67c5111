"""Rich tables the CLI prints; the library returns the data (`unet_zoo.experiments.isbi2012.paper.comparison_rows`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from unet_zoo.experiments.isbi2012.paper import HELD_OUT_NOTE, PAPER_TABLE1, comparison_rows
from unet_zoo.paper import format_score


def comparison_table(metrics: dict[str, Any], title: str = "ISBI 2012: ours vs. the paper") -> Table:
    """Our ISBI scores beside the paper's Table 1, with the held-out note as the caption."""
    table = Table(title=title, caption=HELD_OUT_NOTE)
    table.add_column("metric")
    table.add_column("ours", justify="right")
    table.add_column("paper (Table 1)", justify="right")
    for row in comparison_rows(metrics):
        table.add_row(*row)
    return table


def segmentation_table(metrics: dict[str, Any], title: str = "Cells (segmentation) vs. thresholded probabilities") -> Table:
    """The scores of `evaluate_model(..., segment=True)`: thresholded probability map, segmentation, the paper."""
    seg = metrics["segmentation"]
    table = Table(
        title=title,
        caption="Threshold: the probability map thresholded (best of 0.0-0.9), as the challenge scores it. "
        "Segmentation: unet_zoo.segment's label image, scored as given. Paper: a probability map on the "
        "test set, scored by the organisers; an order-of-magnitude comparison only.",
    )
    for column in ("metric", "threshold", "segmentation", "paper (Table 1)"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    rows = [
        ("Rand error (1 - V_rand)", metrics.get("rand_error"), seg["rand_error"], PAPER_TABLE1["rand_error"]),
        ("V_info", metrics.get("vinfo"), seg["vinfo"], None),
        ("V_rand split / merge", None, f"{seg['vrand_split']:.4f} / {seg['vrand_merge']:.4f}", None),
        ("V_info split / merge", None, f"{seg['vinfo_split']:.4f} / {seg['vinfo_merge']:.4f}", None),
        ("segments per slice", None, f"{seg['segments_per_slice']:.0f}", None),
    ]
    for label, *values in rows:
        table.add_row(label, *(v if isinstance(v, str) else format_score(v) for v in values))
    return table


__all__ = ["comparison_table", "segmentation_table"]
