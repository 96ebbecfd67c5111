import json
import re

import pytest
from typer.testing import CliRunner

from unet_zoo.cli import app

runner = CliRunner()


@pytest.mark.slow
def test_list_table_and_json():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert "original" in result.output and "572 -> 388" in result.output
    result = runner.invoke(app, ["list", "*pad*", "--json"])
    names = [m["name"] for m in json.loads(result.output)]
    assert names == ["padded", "padded-bilinear", "padded-bn"]


def test_list_with_no_match_says_so(monkeypatch):
    from unet_zoo.models import registry

    result = runner.invoke(app, ["list", "*nothing-like-this*"], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "no models registered match '*nothing-like-this*'" in result.output
    monkeypatch.setattr(registry, "PRETRAINED", {})
    monkeypatch.setattr("unet_zoo.cli.models.PRETRAINED", {})
    result = runner.invoke(app, ["list", "--pretrained"], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "no models with published weights" in result.output
    assert "unet-zoo reproduce isbi" in result.output


def test_info():
    result = runner.invoke(app, ["info", "original", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["params"] == 31_030_658
    result = runner.invoke(app, ["info", "small"])
    assert "7,759,554" in result.output


def test_info_unknown_model_suggests():
    result = runner.invoke(app, ["info", "smal"])
    assert result.exit_code == 2
    assert "Did you mean 'small'" in result.output


@pytest.mark.slow
def test_compare_with_bench():
    result = runner.invoke(app, ["compare", "padded", "small", "--bench", "--tile", "32"])
    assert result.exit_code == 0, result.output
    assert "forward s (cpu)" in result.output and "7,759,554" in result.output


@pytest.mark.slow
def test_compare_bench_uses_a_usable_tile_per_model():
    # 40 is usable by neither: small (multiples of 16) runs at 48, timm-resnet18 (multiples of 32) at 64
    result = runner.invoke(app, ["compare", "small", "timm-resnet18", "--bench", "--tile", "40"])
    assert result.exit_code == 0, result.output
    assert re.search(r"bench tile\W+48\W+64\W*$", result.output, re.MULTILINE), result.output


def test_compare_bench_on_missing_device_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(app, ["compare", "small", "padded", "--bench", "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_compare_needs_two_names():
    result = runner.invoke(app, ["compare", "small"])
    assert result.exit_code == 2 and "two or more model names" in result.output and "unet-zoo info small" in result.output
