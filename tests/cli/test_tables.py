"""unet_zoo.cli.tables: the rich tables the CLI prints from the library's data."""

from __future__ import annotations

from rich.console import Console

from unet_zoo.cli.tables import comparison_table
from unet_zoo.experiments.isbi2012.paper import HELD_OUT_NOTE


def test_comparison_table_shows_ours_beside_table1():
    table = comparison_table({"rand_error": 0.05, "vrand_thinned": 0.97}, title="t")
    assert table.caption == HELD_OUT_NOTE and table.title == "t"
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "0.0500" in text and "0.0382" in text and "0.9700" in text and "V_rand after thinning" in text
