"""ISBI 2012 scores: hand-computed cases, scikit-image cross-checks, validation, the real labels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import adapted_rand_error

from unet_zoo.evaluation.metrics import (
    count_topology_errors,
    isbi_scores,
    label_components,
    overlap_scores,
    pixel_error,
    rand_pair_counts,
    rand_scores,
    simple_point_table,
    simple_point_warp,
    thin_boundaries,
    vinfo_scores,
    warping_error,
)

KEYS = {"vrand", "vrand_thinned", "vinfo", "vinfo_thinned", "rand_error", "pixel_error", "iou", "dice"}


def _cells(rng: np.random.Generator, size: int = 64, spacing: int = 16) -> np.ndarray:
    """A synthetic EM-like label: cells (1) separated by 2-pixel membranes (0) on a jittered grid."""
    label = np.ones((size, size), np.uint8)
    for start in range(spacing, size, spacing):
        offset = int(rng.integers(-2, 3))
        label[max(start + offset, 0) : start + offset + 2, :] = 0
        label[:, max(start - offset, 0) : start - offset + 2] = 0
    return label


def test_hand_computed_singletons_and_information():
    # gt segments A = pixels {0, 1}, B = {3, 4}; pixel 2 is membrane.
    # prediction: P1 = {0}, P2 = {2, 3, 4}; pixel 1 is predicted membrane -> a singleton inside A.
    gt = np.array([[1, 1, 0, 1, 1]])
    pred = np.array([[1.0, 0.0, 1.0, 1.0, 1.0]])
    # sum p_ij^2 * n^2 = 1 + 4 + 1 (singleton) = 6; sum s_i^2 = 4 + 4 = 8; sum t_j^2 = 1 + 4 + 1 = 6
    counts = rand_pair_counts(label_components(gt > 0), label_components(pred > 0.5))
    assert (counts.tp, counts.tp + counts.fp, counts.tp + counts.fn) == (6, 6, 8)
    scores = isbi_scores(pred, gt)
    assert scores["vrand"] == pytest.approx(12 / 14)
    assert scores["rand_error"] == pytest.approx(2 / 14)
    # H(gt) = ln 2, H(pred) = 1.5 ln 2, H(gt|pred) = 0, H(pred|gt) = 0.5 ln 2
    # -> precision 1, recall 2/3, V_info = 0.8
    info = vinfo_scores(label_components(gt > 0), label_components(pred > 0.5))
    assert info["h_gt"] == pytest.approx(math.log(2))
    assert info["h_pred"] == pytest.approx(1.5 * math.log(2))
    assert info["vi"] == pytest.approx(0.5 * math.log(2))
    assert scores["vinfo"] == pytest.approx(0.8)
    # pixel F-score of the cell class: tp 3, fp 1, fn 1 -> 0.75
    assert scores["pixel_error"] == pytest.approx(0.25)
    assert scores["iou"] == pytest.approx(3 / 5) and scores["dice"] == pytest.approx(6 / 8)


def test_perfect_prediction_scores_one(rng):
    label = _cells(rng)
    scores = isbi_scores(label.astype(float), label * 255)
    assert KEYS <= set(scores)
    for key in ("vrand", "vrand_thinned", "vinfo", "vinfo_thinned", "iou", "dice"):
        assert scores[key] == pytest.approx(1.0), key
    assert scores["rand_error"] == pytest.approx(0.0) and scores["pixel_error"] == pytest.approx(0.0)


def test_merge_and_split_lower_the_scores(rng):
    label = _cells(rng)
    merged = np.ones_like(label, dtype=float)  # everything one cell
    split = label.astype(float)
    split[:, 40] = 0  # a false membrane line cuts cells
    for wrong in (merged, split):
        scores = isbi_scores(wrong, label)
        assert scores["vrand"] < 0.99 and scores["vinfo"] < 0.99
        assert scores["rand_error"] == pytest.approx(1 - scores["vrand"])
    assert rand_scores(label_components(label), label_components(merged > 0.5))["recall"] == pytest.approx(1.0)
    assert rand_scores(label_components(label), label_components(merged > 0.5))["precision"] < 0.5


def test_matches_skimage_adapted_rand_error_without_singletons(rng):
    # Same contingency table; Fiji counts ordered pairs including self-pairs (N^2 normalisation),
    # scikit-image excludes the n self-pairs, and names the ratios the other way round:
    # its precision = (S_ab - n) / (S_gt - n), its recall = (S_ab - n) / (S_pred - n).
    gt = rng.integers(1, 6, (32, 32))
    pred = rng.integers(1, 4, (32, 32))
    gt[:, :5] = 0  # gt background is ignored by both
    n = int((gt > 0).sum())
    counts = rand_pair_counts(gt, pred)
    error, precision, recall = adapted_rand_error(gt, pred, ignore_labels=(0,))
    assert (counts.tp - n) / (counts.tp + counts.fn - n) == pytest.approx(precision)
    assert (counts.tp - n) / (counts.tp + counts.fp - n) == pytest.approx(recall)
    assert 2 * (counts.tp - n) / (2 * counts.tp + counts.fp + counts.fn - 2 * n) == pytest.approx(1 - error)


def test_close_to_skimage_on_large_segments(rng):
    # With large segments and no singletons the self-pairs are negligible: both F-scores agree.
    label = _cells(rng, size=128, spacing=32)
    gt = label_components(label)
    pred = gt.copy()
    pred[(gt == 1)[:, ::-1] & (gt > 0)] = gt.max() + 1  # relabel a chunk: a split
    error, _, _ = adapted_rand_error(gt, pred, ignore_labels=(0,))
    assert rand_scores(gt, pred)["rand_error"] == pytest.approx(error, abs=2e-3)


def test_differs_from_skimage_with_singletons():
    # scikit-image treats predicted background (0) inside gt as one segment; the challenge as singletons.
    gt = np.ones((1, 6), int)
    pred = np.array([[0, 0, 0, 1, 1, 1]])
    ours = rand_scores(gt, pred)  # tp = 9 + 3 singletons = 12; S_a = 36; S_b = 9 + 3 = 12
    assert ours["vrand"] == pytest.approx(24 / 48)
    sk_error, _, _ = adapted_rand_error(gt, pred, ignore_labels=())
    assert 1 - sk_error != pytest.approx(ours["vrand"])


def test_pixel_error_hand_computed():
    gt = np.array([[1, 1, 0, 0]])
    prob = np.array([[0.95, 0.35, 0.45, 0.05]])
    # th 0.3: pred 1,1,1,0 -> F = 4/5 (the best); th 0.4: 1/2; th 0.5: 2/3; th 0.0: 4/6
    assert pixel_error(prob, gt) == pytest.approx(0.2)
    assert overlap_scores(prob, gt, 0.5) == pytest.approx({"iou": 0.5, "dice": 2 / 3})


def test_thinning_leaves_one_pixel_lines():
    cells = np.ones((6, 12), bool)
    cells[:, 4:9] = False  # a 5-pixel-wide membrane between two cells
    thinned = thin_boundaries(cells)
    assert set(np.unique(thinned)) == {0, 1, 2}
    assert ((thinned == 0).sum(axis=1) == 1).all()  # one line pixel per row
    assert (thinned[cells] > 0).all()  # cell pixels keep their segment
    assert (thin_boundaries(np.zeros((4, 4), bool)) == 1).all()  # no cell: one flat basin


def test_thinning_forgives_thick_membranes(rng):
    from scipy import ndimage as ndi

    label = _cells(rng)
    thick = ndi.binary_erosion(label > 0, iterations=2).astype(float)  # membranes 6 px wide
    scores = isbi_scores(thick, label)
    assert scores["vrand_thinned"] > scores["vrand"]
    assert scores["vrand_thinned"] > 0.99


def test_stack_equals_slice_for_identical_slices(rng):
    label = _cells(rng)
    prob = np.clip(label + rng.normal(0, 0.3, label.shape), 0, 1)
    one = isbi_scores(prob, label)
    two = isbi_scores(np.stack([prob, prob]), np.stack([label, label]))
    for key in KEYS:
        assert two[key] == pytest.approx(one[key]), key


def test_thinned_scores_average_per_slice(rng):
    label = _cells(rng)
    good = label.astype(float)
    bad = np.ones_like(good)
    a, b = isbi_scores(good, label), isbi_scores(bad, label)
    both = isbi_scores(np.stack([good, bad]), np.stack([label, label]))
    assert both["vrand_thinned"] <= (a["vrand_thinned"] + b["vrand_thinned"]) / 2 + 1e-12
    assert both["vinfo"] <= (a["vinfo"] + b["vinfo"]) / 2 + 1e-12


@pytest.mark.parametrize(
    "prob, label, match",
    [
        (np.zeros((4, 4)), np.zeros((4, 5)), "same shape"),
        (np.full((4, 4), 1.5), np.zeros((4, 4)), r"\[0, 1\]"),
        (np.zeros((4, 4)), np.full((4, 4), 3), "binary"),
        (np.zeros(4), np.zeros(4), "2-D"),
    ],
)
def test_bad_input_says_what_is_wrong(prob, label, match):
    with pytest.raises(ValueError, match=match):
        isbi_scores(prob, label)


def test_real_labels(isbi_dir):
    import tifffile

    label = tifffile.imread(isbi_dir / "train-labels.tif", key=0)[:256, :256]
    assert isbi_scores(label / 255.0, label)["vrand_thinned"] == pytest.approx(1.0)
    from scipy import ndimage as ndi

    eroded = ndi.binary_erosion(label > 0, iterations=3).astype(float)
    scores = isbi_scores(eroded, label)
    assert scores["pixel_error"] > 0.05
    assert scores["vrand_thinned"] > scores["vrand"]


def test_stack_pools_rand_pairs_but_averages_thinned_and_information_scores(rng):
    # Binary predictions: every threshold gives the same segmentation, so the best-over-thresholds
    # step cannot hide how slices are combined.
    label = _cells(rng)
    good = label.astype(float)
    bad = np.ones_like(good)
    bad[:, 30:34] = 0  # one false vertical membrane, no true ones: merges and a split
    a, b = isbi_scores(good, label), isbi_scores(bad, label)
    both = isbi_scores(np.stack([good, bad]), np.stack([label, label]))
    for key in ("vrand_thinned", "vinfo", "vinfo_thinned"):  # Fiji: per-slice mean
        assert both[key] == pytest.approx((a[key] + b[key]) / 2), key
    gt = label_components(label)
    pooled = rand_pair_counts(gt, label_components(good > 0.5)) + rand_pair_counts(gt, label_components(bad > 0.5))
    assert both["vrand"] == pytest.approx(pooled.fscore)  # Fiji: pair counts summed over slices
    assert both["vrand"] != pytest.approx((a["vrand"] + b["vrand"]) / 2, abs=1e-3)  # ... which is not the mean
    wrong = int(((bad > 0.5) != (label > 0)).sum())
    tp = int(((bad > 0.5) & (label > 0)).sum()) + int((label > 0).sum())
    assert both["pixel_error"] == pytest.approx(1 - 2 * tp / (2 * tp + wrong))  # pixel counts summed


# --- warping error ----------------------------------------------------------------------------------

FOUR = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
RING = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))  # bit k of a code


def _two_cells(size: int = 12) -> np.ndarray:
    """Two cells (1) side by side, split by a 1-pixel vertical membrane (0) in column 6."""
    label = np.ones((size, size), np.uint8)
    label[:, 6] = 0
    return label


def test_simple_point_table_matches_brute_force():
    # Brute force: flipping the centre of the 3x3 patch keeps the number of 4-connected cell components
    # and of 8-connected membrane components of the patch, whichever value the centre has.
    from scipy import ndimage as ndi

    def counts(patch):
        return ndi.label(patch, FOUR)[1], ndi.label(~patch, np.ones((3, 3), bool))[1]

    table = simple_point_table()
    assert table.shape == (256,) and table.dtype == bool
    for code in range(256):
        patch = np.zeros((3, 3), bool)
        for k, (dy, dx) in enumerate(RING):
            patch[1 + dy, 1 + dx] = bool(code >> k & 1)
        on, off = patch.copy(), patch.copy()
        on[1, 1] = True
        assert table[code] == (counts(on) == counts(off)), code
    assert table[0b00011111] and not table[0] and not table[255]  # edge of a cell; isolated; hole
    assert not table[0b01000010]  # cells above and below only: flipping joins or cuts them


def test_warping_error_identical_is_zero(rng):
    label = _cells(rng)
    assert warping_error(label.astype(float), label) == 0.0
    assert warping_error(label > 0, label * 255, threshold=0.5, errors="all") == 0.0


def test_shifted_boundaries_cost_no_warping_error():
    label = np.ones((40, 40), np.uint8)
    pred = np.ones((40, 40))
    for start in (10, 25):  # 2-pixel membranes; the prediction's are moved by 1 or 2 and 3 pixels wide
        label[start : start + 2, :] = 0
        label[:, start : start + 2] = 0
        pred[start + 1 : start + 4, :] = 0
        pred[:, start - 2 : start + 1] = 0
    assert pixel_error(pred, label) > 0.05
    assert label_components(pred > 0.5).max() == label_components(label).max() == 9
    assert warping_error(pred, label) == 0.0
    assert warping_error(pred, label, errors="all") == 0.0  # every mismatch could be warped away


def test_split_by_a_one_pixel_line_leaves_one_pixel():
    label = _two_cells()
    pred = label.astype(float)
    pred[4, :6] = 0  # a false membrane from the image edge to the true one cuts the left cell in two
    # Warping flips (4, 0), ..., (4, 4) one by one (each is simple when visited); (4, 5) would cut the
    # left cell and stays: one split pixel out of 144, at every threshold.
    warped, left = simple_point_warp(label, pred, 0.5)
    assert left.tolist() == [[4, 5]]
    assert count_topology_errors(warped, left) == (1, 0)
    assert warping_error(pred, label) == pytest.approx(1 / 144)
    assert warping_error(pred, label, errors="all") == pytest.approx(1 / 144)
    # Grey values change the visiting order (farthest from the threshold first), not the count.
    ramp = pred.copy()
    ramp[4, :6] = [0.4, 0.3, 0.0, 0.1, 0.2, 0.45]
    assert warping_error(ramp, label, threshold=0.5) == pytest.approx(1 / 144)
    assert warping_error(ramp, label) == 0.0  # at 0.0 only the 0.0 pixel is membrane: a hole, no split


def test_merge_of_two_cells_counts_the_gap():
    label = _two_cells()
    pred = np.ones((12, 12))  # the membrane is gone: the two cells merge
    warped, left = simple_point_warp(label, pred, 0.5)
    assert len(left) == 12 and (left[:, 1] == 6).all()  # no gap pixel can be filled without a merge
    assert count_topology_errors(warped, left) == (0, 12)
    assert warping_error(pred, label) == pytest.approx(12 / 144)
    wide = np.ones((12, 12), np.uint8)
    wide[:, 5:7] = 0  # a 2-pixel membrane: one column is warped away, the other merges
    assert warping_error(pred, wide) == pytest.approx(12 / 144)


def test_holes_count_only_in_the_plain_warping_error():
    label = _two_cells()
    pred = label.astype(float)
    pred[6, 2] = 0  # a membrane speck inside a cell: a hole, neither split nor merge
    assert warping_error(pred, label) == 0.0
    assert warping_error(pred, label, errors="all") == pytest.approx(1 / 144)
    with pytest.raises(ValueError, match="errors"):
        warping_error(pred, label, errors="splits")


def _reference_warp(label, prob, th):
    """Straightforward reading of Fiji's simplePointWarp2d: full passes over the sorted mismatches."""
    table = simple_point_table()
    h, w = label.shape
    src = np.zeros((h + 2, w + 2), np.uint8)
    src[1:-1, 1:-1] = label > 0
    tgt = np.zeros_like(src)
    tgt[1:-1, 1:-1] = prob > th
    while True:
        points = [(y, x) for x in range(1, w + 1) for y in range(1, h + 1) if src[y, x] != tgt[y, x]]
        points.sort(key=lambda p: -np.float32(abs(float(np.float32(prob[p[0] - 1, p[1] - 1])) - th)))
        flipped = False
        for y, x in points:
            if table[sum(int(src[y + dy, x + dx]) << k for k, (dy, dx) in enumerate(RING))]:
                src[y, x] ^= 1
                flipped = True
        if not flipped:
            return src[1:-1, 1:-1].astype(bool), np.array([(y - 1, x - 1) for y, x in points]).reshape(-1, 2)


def _reference_errors(warped, points):
    """Fiji's classifyMismatches2d, relabelling the whole slice for every undecided cell pixel."""
    from scipy import ndimage as ndi

    h, w = warped.shape

    def ids(labels, y, x):
        return {int(labels[y + dy, x + dx]) for dy, dx in RING if 0 <= y + dy < h and 0 <= x + dx < w}

    labels = ndi.label(warped, FOUR)[0]
    splits = merges = 0
    for y, x in points:
        around = ids(labels, y, x)
        if len(around) >= 3:
            splits += bool(warped[y, x])
            merges += not warped[y, x]
        elif len(around) == 2 and warped[y, x]:
            removed = warped.copy()
            removed[y, x] = False
            splits += len(ids(ndi.label(removed, FOUR)[0], y, x)) > 2
    return splits, merges


def test_warping_matches_a_straightforward_reference(rng):
    from scipy import ndimage as ndi

    for trial in range(40):
        n = int(rng.integers(6, 24))
        noise = rng.random((n, n))
        label = ndi.gaussian_filter(noise, 1.0) > 0.5 if trial % 2 else noise > 0.4
        prob = np.clip(ndi.gaussian_filter(label.astype(float), 0.7) + rng.normal(0, 0.25, (n, n)), 0, 1)
        if trial % 3 == 0:
            prob = np.round(prob, 1)  # ties: the stable sort keeps column-major order
        th = float(rng.choice([0.3, 0.5, 0.7]))
        warped, left = simple_point_warp(label, prob, th)
        ref_warped, ref_left = _reference_warp(label, prob, th)
        assert np.array_equal(warped, ref_warped) and np.array_equal(left, ref_left), trial
        assert count_topology_errors(warped, left) == _reference_errors(warped, left), trial


def test_isbi_scores_warping_error_pools_slices_at_one_threshold():
    label = _two_cells()
    split = label.astype(float)
    split[4, :6] = 0.35  # a split for th >= 0.4 (1 pixel)
    merged = label.astype(float)
    merged[:, 6] = 0.45  # a merge for th <= 0.4 (12 pixels)
    a, b = isbi_scores(split, label), isbi_scores(merged, label)
    assert a["warping_error"] == 0.0 and b["warping_error"] == 0.0  # each slice alone has a clean threshold
    both = isbi_scores(np.stack([split, merged]), np.stack([label, label]))
    # Fiji: split + merge pixels summed over the stack per threshold, then the best threshold for the
    # whole stack (0.5: 1 + 0 pixels of 288), not each slice's own best.
    assert both["warping_error"] == pytest.approx(1 / 288)
    assert both["best_threshold_warping"] == 0.5
    assert warping_error(np.stack([split, merged]), np.stack([label, label])) == both["warping_error"]
    assert "warping_error" not in isbi_scores(split, label, warping=False)


def test_warping_error_on_real_labels(isbi_dir):
    import tifffile
    from scipy import ndimage as ndi

    label = tifffile.imread(isbi_dir / "train-labels.tif", key=0)
    assert warping_error(label / 255.0, label) == 0.0
    eroded = ndi.binary_erosion(label > 0, iterations=1)  # membranes 2 pixels thicker
    error = warping_error(eroded, label, threshold=0.5)
    assert 0 < error < 1e-3  # a few cells cut where they are 2 pixels thin
    assert error < pixel_error(eroded.astype(float), label) / 50
