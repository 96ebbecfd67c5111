"""studies/label_efficiency.py: the maps it compares and how it counts the errors they hold."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "label_efficiency.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("label_efficiency", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _membranes(widths: tuple[int, ...], size: int = 80) -> np.ndarray:
    """(2, size, size) probabilities: cells (P(cell) 0.9) cut by vertical membranes (P(cell) 0.1) of these widths."""
    p_cell = np.full((size, size), 0.9, np.float32)
    for index, width in enumerate(widths):
        left = 10 + 20 * index
        p_cell[:, left : left + width] = 0.1
    return np.stack([1 - p_cell, p_cell])


def test_wide_membrane_map_marks_membrane_too_wide_to_be_one(study):
    probs = _membranes((3, 24))  # a 3-px membrane at columns 10-12, a 24-px patch called membrane at 30-53
    wide = study.wide_membrane_map(probs)  # radius 8 px
    assert wide[:, :25].max() == 0.0  # cells and the thin membrane
    assert wide[:, 41].min() == 1.0  # the middle of the wide patch, 12 px from any cell
    assert wide[:, 30:38].max() == 0.0  # up to 8 px from a cell
    assert study.wide_membrane_map(probs, radius=12.0).max() == 0.0
    assert study.wide_membrane_map(probs, radius=1.0)[:, 11].min() == 1.0  # the thin one's middle: 2 px from a cell


def test_label_next_map_is_the_mean_of_entropy_and_wide_membrane(study):
    from unet_zoo.inference.tiling import entropy_map

    probs = _membranes((3, 24))
    both = study.label_next_map(probs)
    np.testing.assert_allclose(both, (entropy_map(probs) + study.wide_membrane_map(probs)) / 2, atol=1e-6)
    assert both[:, 41].min() > both[:, 11].max()  # equally sure, but too wide


def test_error_share_counts_exactly_the_top_tenth_even_with_ties(study):
    cells = np.ones((10, 10), np.uint8)
    probs = np.full((10, 10), 0.9)
    probs[0] = 0.1  # 10 error pixels, in the first row
    flat = np.zeros((10, 10))  # every pixel tied: the top 10% is 10 pixels drawn in a fixed order
    share = study.error_share(probs, cells, flat)
    # 10 errors in all: the errors' share in the top equals the error rate in it only if the top is 10 pixels
    assert share["share_of_errors_in_top"] == pytest.approx(share["error_rate_in_top"])
    assert share["share_of_errors_in_top"] < 1.0
    hot = np.zeros((10, 10))
    hot[0] = 1.0
    assert study.error_share(probs, cells, hot)["share_of_errors_in_top"] == 1.0
    assert study.error_share(probs, cells, hot)["error_rate"] == pytest.approx(0.1)
