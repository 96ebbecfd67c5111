"""segmentation_scores: the ISBI segment scores of a label image, consistent with isbi_scores' definitions."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import watershed

from unet_zoo.evaluation.metrics import isbi_scores, label_components, segmentation_scores


def _grid(size: int = 32, spacing: int = 8) -> np.ndarray:
    """Square cells (1) separated by 1-pixel membranes (0)."""
    label = np.ones((size, size), np.uint8)
    label[spacing - 1 :: spacing, :] = 0
    label[:, spacing - 1 :: spacing] = 0
    return label


def test_the_ground_truth_cells_score_perfectly():
    label = _grid()
    scores = segmentation_scores(label_components(label), label)
    assert scores["rand_error"] == pytest.approx(0.0) and scores["vinfo"] == pytest.approx(1.0)
    assert scores["num_slices"] == 1 and scores["segments_per_slice"] == 16


def test_membrane_pixels_do_not_count_so_a_watershed_needs_no_background():
    label = _grid()
    filled = watershed(np.zeros(label.shape), label_components(label), connectivity=1)  # membranes given to cells
    assert (filled > 0).all()
    assert segmentation_scores(filled, label)["rand_error"] == pytest.approx(0.0)


def test_splits_and_merges_lower_their_own_parts():
    label = _grid()
    gt = label_components(label)
    split = gt.copy()
    split[:3, :7] = 100  # cell 1 cut in two
    merged = np.where(gt == 2, 1, gt)  # cells 1 and 2 fused
    s, m = segmentation_scores(split, label), segmentation_scores(merged, label)
    assert s["vrand_split"] < 1 and s["vrand_merge"] == pytest.approx(1.0)
    assert m["vrand_merge"] < 1 and m["vrand_split"] == pytest.approx(1.0)
    assert s["vinfo_split"] < 1 and s["vinfo_merge"] == pytest.approx(1.0)
    assert m["vinfo_merge"] < 1 and m["vinfo_split"] == pytest.approx(1.0)


def test_agrees_with_isbi_scores_for_a_thresholded_map(rng):
    label = np.stack([_grid(), _grid()])
    prob = np.clip(label + rng.normal(0, 0.4, label.shape), 0, 1)
    reference = isbi_scores(prob, label, thresholds=[0.5], warping=False)
    segments = np.stack([label_components(p > 0.5) for p in prob])  # background 0 = singletons, as isbi_scores
    scores = segmentation_scores(segments, label)
    assert scores["vrand"] == pytest.approx(reference["vrand"]) and scores["vinfo"] == pytest.approx(reference["vinfo"])


def test_bad_inputs_say_what_is_wrong():
    label = _grid()
    with pytest.raises(TypeError, match="integer label image"):
        segmentation_scores(label.astype(np.float32), label)
    with pytest.raises(ValueError, match="same shape"):
        segmentation_scores(label_components(label)[:8], label)
    with pytest.raises(ValueError, match="binary"):
        segmentation_scores(label_components(label), label * 3)
