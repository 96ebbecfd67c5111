"""`unet-zoo finetune --label-form scribbles`: what auto decided, and one red error line for bad strokes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.finetuning.strokes import CELL, draw_strokes
from unet_zoo.training.data import synthetic_cells

runner = CliRunner()


@pytest.fixture()
def data(tmp_path):
    images, cells = synthetic_cells(2, 96, seed=1)
    strokes = draw_strokes(cells, 6, rng=0, length=10)
    tifffile.imwrite(tmp_path / "em.tif", images)
    tifffile.imwrite(tmp_path / "strokes.tif", strokes)
    tifffile.imwrite(tmp_path / "no-cells.tif", np.where(strokes == CELL, 0, strokes).astype(np.uint8))
    tifffile.imwrite(tmp_path / "other.tif", np.where(strokes == CELL, 7, strokes).astype(np.uint8))
    tifffile.imwrite(tmp_path / "small.tif", strokes[:, :80])
    tifffile.imwrite(tmp_path / "cells.tif", cells * 255)
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), tmp_path / "base")
    recipe = tmp_path / "ft.toml"
    text = (unet_zoo.training.recipes.recipe_path("finetune")).read_text().replace("tile = 256", "tile = 32")
    recipe.write_text(text.replace("eval_every = 100", "eval_every = 2"))
    return tmp_path


@pytest.mark.slow
def test_auto_says_it_read_scribbles_and_scores_held_out_strokes(data, monkeypatch):
    monkeypatch.chdir(data)
    args = ["finetune", str(data / "base"), "--images", str(data / "em.tif"), "--labels", str(data / "strokes.tif")]
    result = runner.invoke(app, [*args, "--out", str(data / "out"), "--steps", "2", "--recipe", str(data / "ft.toml")])
    assert result.exit_code == 0, result.output
    assert "scribbles" in result.output and "labelled" in result.output
    assert "stroke_accuracy" in result.output


def test_bad_strokes_exit_2_with_one_line(data):
    base = ["finetune", str(data / "base"), "--images", str(data / "em.tif"), "--out", str(data / "o")]
    for labels, expected in (
        ("no-cells.tif", "no cell stroke"),
        ("other.tif", "also hold 7"),
        ("small.tif", "differ in shape"),
    ):
        result = runner.invoke(app, [*base, "--labels", str(data / labels), "--label-form", "scribbles"])
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "Traceback" not in result.output
    dense_as_strokes = runner.invoke(app, [*base, "--labels", str(data / "cells.tif"), "--label-form", "scribbles"])
    assert dense_as_strokes.exit_code == 2 and "also hold 255" in dense_as_strokes.output
    assert not (data / "o").exists()
