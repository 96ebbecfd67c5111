"""Rich tables the CLI prints; the library returns the data (`unet_zoo.paper.comparison_rows`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from unet_zoo.paper import HELD_OUT_NOTE, comparison_rows


def comparison_table(metrics: dict[str, Any], title: str = "ISBI 2012: ours vs. the paper") -> Table:
    """Our ISBI scores beside the paper's Table 1, with the held-out note as the caption."""
    table = Table(title=title, caption=HELD_OUT_NOTE)
    table.add_column("metric")
    table.add_column("ours", justify="right")
    table.add_column("paper (Table 1)", justify="right")
    for row in comparison_rows(metrics):
        table.add_row(*row)
    return table


__all__ = ["comparison_table"]
