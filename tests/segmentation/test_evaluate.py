"""Segmentation scores in evaluation: evaluate_model(segment=...) and `unet-zoo evaluate --segment`."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import unet_zoo
from unet_zoo.cli import app
from unet_zoo.evaluation.evaluate import evaluate_model
from unet_zoo.segmentation import SegmentationParams
from unet_zoo.training.data import synthetic_cells


def test_evaluate_model_adds_segmentation_scores():
    images, labels = synthetic_cells(2, 64, seed=2)
    model = unet_zoo.create_model("small", base_channels=4, depth=2)
    params = SegmentationParams(threshold=0.4, merge_threshold=None)
    result = evaluate_model(model, images, labels, tile=64, warping=False, segment=params)
    seg = result["segmentation"]
    assert seg["params"] == params.to_dict() and seg["num_slices"] == 2
    assert 0 <= seg["rand_error"] <= 1 and 0 <= seg["vinfo"] <= 1 and seg["seconds_per_slice"] > 0
    assert "segmentation" not in evaluate_model(model, images, labels, tile=64, warping=False)


@pytest.mark.slow
def test_evaluate_segment_prints_both_tables(isbi_dir, tmp_path):
    folder = tmp_path / "tiny"
    unet_zoo.save_pretrained(unet_zoo.create_model("small", base_channels=4, depth=2), folder)
    args = ["evaluate", str(folder), "--data-dir", str(isbi_dir), "--no-warping", "--segment", "--tile", "256"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "segmentation" in text and "0.0382" in text and "s per slice" in text
    assert np.isfinite(float(text.split("segmentation: ")[1].split(" s per slice")[0]))
