"""`unet-zoo finetune`: the before/after table, and one red error line for bad input."""

from __future__ import annotations

import pytest
import tifffile
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.training.data import synthetic_cells

runner = CliRunner()


def _data(tmp_path):
    images, cells = synthetic_cells(2, 96, seed=1)
    tifffile.imwrite(tmp_path / "em.tif", images)
    tifffile.imwrite(tmp_path / "cells.tif", cells * 255)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "base")
    recipe = tmp_path / "ft.toml"
    text = (unet_zoo.training.recipes.recipe_path("finetune")).read_text().replace("tile = 256", "tile = 32")
    recipe.write_text(text.replace("eval_every = 100", "eval_every = 2"))
    return tmp_path


@pytest.mark.slow
def test_finetune_command_prints_before_and_after(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the run folder goes to ./runs/
    d = _data(tmp_path)
    args = ["finetune", str(d / "base"), "--images", str(d / "em.tif"), "--labels", str(d / "cells.tif")]
    result = runner.invoke(
        app,
        [
            *args,
            "--out",
            str(d / "out"),
            "--steps",
            "2",
            "--recipe",
            str(d / "ft.toml"),
            "--device",
            "cpu",
            "--precision",
            "bf16",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "held out" in result.output and "before" in result.output and "after" in result.output
    assert "precision: bf16 (forced)" in result.output
    assert (d / "out" / "model.safetensors").is_file()
    assert "bf16" in (d / "out" / "README.md").read_text()  # the card records the precision that ran
    again = runner.invoke(app, [*args, "--out", str(d / "out")])
    assert again.exit_code == 2 and "error:" in again.output and "--overwrite" in again.output
    predicted = runner.invoke(app, ["predict", str(d / "out"), str(d / "em.tif"), "--out", str(d / "p"), "--pixel-size", "8"])
    assert predicted.exit_code == 0, predicted.output
    assert "rescaled to the model's 4 nm/px" in predicted.output
    assert tifffile.imread(d / "p" / "em_prob.tif").shape == (2, 96, 96)


def test_finetune_command_errors(tmp_path):
    d = _data(tmp_path)
    base = ["finetune", str(d / "base"), "--images", str(d / "em.tif"), "--out", str(d / "o")]
    missing = runner.invoke(app, [*base, "--labels", str(d / "nope.tif")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    polarity = runner.invoke(
        app, [*base, "--labels", str(d / "cells.tif"), "--foreground", "membrane", "--recipe", str(d / "ft.toml")]
    )
    assert polarity.exit_code == 2 and "inverted" in polarity.output
    half = runner.invoke(app, [*base, "--labels", str(d / "cells.tif"), "--precision", "half"])
    assert half.exit_code == 2 and "--precision: must be one of auto, bf16, fp32" in half.output
    assert not (d / "o").exists()
