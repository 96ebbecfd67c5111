"""unet_zoo.evaluation.evaluate: a model predicted and scored on labelled EM slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import unet_zoo
from unet_zoo.evaluation.evaluate import evaluate_model


class Oracle(nn.Module):
    """Logits that say 'cell' where the input is bright: a perfect model for images equal to labels."""

    in_channels, num_classes, padding, depth = 1, 2, 1, 4

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def output_size(self, size):
        return size if size % 16 == 0 else None

    def forward(self, x):
        cell = (x - 0.5) * 20
        return torch.cat([-cell, cell], dim=1) + self.dummy


def _labels(rng, slices=2, size=48):
    labels = np.ones((slices, size, size), np.uint8)
    labels[:, ::12, :] = 0
    labels[:, :, ::12] = 0
    return labels


def test_oracle_scores_perfectly(rng):
    labels = _labels(rng)
    result = evaluate_model(Oracle(), labels * 255, labels)
    for key in ("vrand", "vrand_thinned", "vinfo", "vinfo_thinned", "iou", "dice"):
        assert result[key] == pytest.approx(1.0), key
    assert result["rand_error"] == pytest.approx(0) and result["pixel_error"] == pytest.approx(0)
    assert result["num_slices"] == 2 and result["seconds_per_slice"] > 0 and result["tta"] is False
    assert result["warping_error"] == 0.0 and "best_threshold_warping" in result


def test_warping_error_can_be_skipped_and_counts_a_merge(rng):
    labels = _labels(rng)
    merged = labels.copy()
    merged[:, 12, 13:23] = 1  # one cut through a membrane line: two cells become one
    with_warping = evaluate_model(Oracle(), merged * 255, labels)
    assert with_warping["warping_error"] > 0
    without = evaluate_model(Oracle(), merged * 255, labels, warping=False)
    assert "warping_error" not in without and "best_threshold_warping" not in without
    assert without["rand_error"] == pytest.approx(with_warping["rand_error"])


@pytest.mark.slow
def test_untrained_model_runs_and_scores_in_range(rng):
    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=4)
    labels = _labels(rng, slices=1, size=40)
    images = rng.integers(0, 256, labels.shape, dtype=np.uint8)
    result = evaluate_model(model, images, labels, tta=True)
    for key in ("vrand", "vinfo", "rand_error", "pixel_error", "iou", "dice"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["tta"] is True


def test_shape_mismatch():
    with pytest.raises(ValueError, match=r"\(S, H, W\)"):
        evaluate_model(Oracle(), np.zeros((2, 16, 16), np.uint8), np.zeros((1, 16, 16), np.uint8))
