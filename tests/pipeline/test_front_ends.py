"""Python, the command line and the napari widget run one pipeline: for the same image and settings (pixel size,
backend, precision) they give identical probabilities and cells, bit for bit."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from tests.pipeline.conftest import write_tiff
from unet_zoo import Predictor
from unet_zoo.cli import app
from unet_zoo.napari._predict import load, predict_sections, section_indices

runner = CliRunner()

CASES = [  # (backend, precision, pixel size in nm or None)
    ("torch", "fp32", None),
    ("torch", "fp32", 8.0),
    ("torch", "bf16", 6.0),
    ("onnxruntime", "fp32", 8.0),
    ("openvino", "fp32", None),
]
NEEDS = {"onnxruntime": "onnxruntime", "openvino": "openvino"}


def _cli(*args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("backend", "precision", "pixel_size"), CASES, ids=[f"{b}-{p}-{s or 'own'}" for b, p, s in CASES])
def test_python_cli_and_napari_agree(model_dir, stack, tmp_path, backend, precision, pixel_size):
    if backend in NEEDS and importlib.util.find_spec(NEEDS[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    path = write_tiff(tmp_path / "em.tif", stack)
    size = [] if pixel_size is None else ["--pixel-size", str(pixel_size)]
    options = ["--backend", backend, "--precision", precision, *size]

    python = Predictor(str(model_dir), backend=backend, precision=precision, pixel_size=pixel_size).run(path, segment=True)
    assert python.record["inference"]["backend"] == backend
    assert python.record["inference"]["precision"] == ("fp32" if precision == "fp32" else "bf16")

    _cli("predict", str(model_dir), str(path), "--out", str(tmp_path / "p"), *options)
    _cli("segment", str(model_dir), str(path), "--out", str(tmp_path / "s"), *options)
    cli_cell = tifffile.imread(tmp_path / "p" / "em_prob.tif")
    cli_labels = tifffile.imread(tmp_path / "s" / "em_labels.tif")

    loaded = load(str(model_dir), backend, precision)
    widget = predict_sections(loaded, stack, section_indices(stack.shape), segment_cells=True, pixel_size=pixel_size)

    np.testing.assert_array_equal(cli_cell, python.cell)
    np.testing.assert_array_equal(widget.membrane, python.membrane)
    np.testing.assert_array_equal(cli_labels, python.labels)
    np.testing.assert_array_equal(widget.labels, python.labels)
    assert widget.metadata["unet_zoo"]["inference"]["path"] == python.record["inference"]["path"]
    assert python.labels is not None and python.labels[1].min() > python.labels[0].max()  # one numbering
