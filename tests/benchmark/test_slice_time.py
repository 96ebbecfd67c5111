"""The whole-slice benchmark: default path against torch float32, total and network time, FLOPs and the floor."""

from __future__ import annotations

import pytest

import unet_zoo
from unet_zoo.benchmark.slice_time import slice_prediction, slice_table
from unet_zoo.inference.tiling import choose_tile, tile_margin
from unet_zoo.models.window import WindowedLogits
from unet_zoo.utils.timing import count_forward_flops


def test_slice_prediction_counts_every_forward_pass_and_its_floor():
    net = unet_zoo.create_model("small", base_channels=8)
    peak = {"fp32": 1.0, "bf16": 4.0}
    result = slice_prediction(net, peak, side=48, repeats=1)
    rows = result["rows"]
    assert [(r["tta"], r["path"]) for r in rows][1::2] == [(False, "torch-fp32"), (True, "torch-fp32")]
    tile = choose_tile(net, 48, 48)
    margin = tile_margin(net, tile, 48, 48)  # one tile covers a 48 px slice: only its window is computed
    window = WindowedLogits(net.eval(), (margin, tile - margin - 48, margin, tile - margin - 48)).eval()
    one_pass = count_forward_flops(window, (1, 1, tile, tile))
    assert one_pass < count_forward_flops(net, (1, 1, tile, tile))
    for r in rows:
        assert 0 < r["network_seconds"] <= r["seconds"]
        assert r["network_flops"] == one_pass * (8 if r["tta"] else 1)
        assert r["floor_seconds"] == pytest.approx(r["network_flops"] / 4e12)
        assert r["of_floor"] == pytest.approx(r["network_seconds"] / r["floor_seconds"])
    assert result["speedup"]["no_tta"] == pytest.approx(rows[1]["seconds"] / rows[0]["seconds"])
    table = "\n".join(slice_table(result))
    assert table.count("| default |") == 2 and table.count("| forced | torch-fp32 |") == 2
