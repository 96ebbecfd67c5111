"""The ISBI 2012 challenge's segmentation scores, as the organisers' Fiji scripts compute them.

Followed: Trainable_Segmentation (fiji/Trainable_Segmentation), package ``trainableSegmentation.metrics``:
``RandError.getForegroundRestrictedRandIndexMaximalFScore`` / ``foregroundRestrictedStatsN2`` (V_rand),
``RandError.getMaximalVRandAfterThinning(min, max, step, perSliceAverage=true)`` (V_rand after thinning),
``VariationOfInformation.getMaximalVInfoAfterThinning`` / ``foregroundRestrictedFscore`` (V_info) and
``PixelError.getPixelErrorMaximalFScore`` (pixel error); see also Arganda-Carreras et al. (2015),
"Crowdsourcing the creation of image segmentation algorithms for connectomics", Front. Neuroanat.

Conventions (as the challenge):

- ``cell_prob``: float in [0, 1], the probability of *cell* (non-membrane), i.e. 1 - P(membrane).
- ``label``: ground truth, 255 or 1 = cell, 0 = membrane.
- For each threshold ``th`` both images are binarised with ``value > th``; segments are the 4-connected
  components of the cell (foreground) pixels.
- Foreground restriction: only ground-truth cell pixels count (n = their number). Predicted-membrane
  pixels inside them are singleton segments.
- N^2 normalisation: with p_ij the contingency table / n, s_i, t_j its row and column sums,
  V_rand = sum p_ij^2 / (0.5 sum s_i^2 + 0.5 sum t_j^2) (singletons add 1/n each to both sums),
  V_info = harmonic mean of I(S;T)/H(S) and I(S;T)/H(T) (natural logarithms).
- Thinned ("leaderboard") versions: the thresholded prediction's membrane is thinned to 1-pixel lines
  by a watershed with 4-connectivity seeded by the cell components, then scored as above.
- Best score over thresholds. Stacks: V_rand sums the pair counts of all slices per threshold
  (Fiji's ``getForegroundRestrictedRandIndexStats``); V_rand after thinning, V_info and V_info after
  thinning average the per-slice scores (Fiji's per-slice average); pixel F-score sums pixel counts.

Differences from Fiji, stated: the default thresholds are 0.0, 0.1, ..., 0.9 (Fiji's loop
``th <= 1.0; th += 0.1`` also visits 0.9999999999999999, which only matters for probabilities of
exactly 1.0); the watershed is scikit-image's (``watershed_line=True``, FIFO flooding of the flat
membrane plateau), which follows the same rule as Fiji's ``WatershedTransform2D`` but has not been
checked pixel-by-pixel against it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

DEFAULT_THRESHOLDS = np.round(np.arange(0.0, 1.0, 0.1), 10)
_FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)


# --- inputs ---------------------------------------------------------------------------------------


def _as_stacks(cell_prob: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return (S, H, W) float64 probabilities and (S, H, W) bool ground-truth cells."""
    prob, gt = np.asarray(cell_prob), np.asarray(label)
    if prob.shape != gt.shape:
        raise ValueError(f"cell_prob {prob.shape} and label {gt.shape} must have the same shape (H, W) or (S, H, W)")
    if prob.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D slice (H, W) or a 3-D stack (S, H, W), got shape {prob.shape}")
    if prob.dtype.kind not in "fbiu":
        raise TypeError(f"cell_prob must be numeric, got dtype {prob.dtype}")
    prob = prob.astype(np.float64, copy=False)
    if prob.size and (np.nanmin(prob) < 0 or np.nanmax(prob) > 1 or np.isnan(prob).any()):
        raise ValueError(
            "cell_prob must be probabilities in [0, 1] (1 - P(membrane)); "
            f"got values in [{np.nanmin(prob):.3g}, {np.nanmax(prob):.3g}]"
            + (" with NaNs" if np.isnan(prob).any() else "")
            + ". Apply softmax/sigmoid first, or divide uint8 maps by 255."
        )
    values = np.unique(gt)
    if not set(values.tolist()) <= {0, 1, 255}:
        raise ValueError(
            f"label must be binary: 255 or 1 = cell, 0 = membrane; found values {values[:10].tolist()}"
        )
    gt = gt > 0
    if prob.ndim == 2:
        prob, gt = prob[None], gt[None]
    return prob, gt


# --- segments -------------------------------------------------------------------------------------


def label_components(cell_mask: np.ndarray) -> np.ndarray:
    """4-connected components of a (H, W) bool cell mask -> int32 labels, 0 = membrane."""
    labels, _ = ndi.label(np.asarray(cell_mask, dtype=bool), structure=_FOUR_CONNECTED)
    return labels.astype(np.int32, copy=False)


def thin_boundaries(cell_mask: np.ndarray) -> np.ndarray:
    """Thin the membrane of a (H, W) bool cell mask to 1-pixel lines -> int32 labels, 0 = line.

    A 4-connected watershed seeded by the 4-connected cell components floods the membrane; pixels
    where two segments meet stay 0. Fiji's ``WatershedTransform2D(binary, 4)`` on the inverted mask
    does the same. A mask with no cell pixel is one flat basin, i.e. a single segment.
    """
    from skimage.segmentation import watershed

    mask = np.asarray(cell_mask, dtype=bool)
    markers = label_components(mask)
    if markers.max() == 0:
        return np.ones(mask.shape, dtype=np.int32)
    return watershed((~mask).astype(np.uint8), markers, connectivity=1, watershed_line=True).astype(np.int32)


# --- contingency tables ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Overlap:
    """Foreground-restricted overlap of a ground-truth and a predicted segmentation (counts in pixels).

    joint: counts n_ij > 0 of pixels in gt segment i >= 1 and predicted segment j >= 1.
    gt_sizes: sizes of the ground-truth segments (pixels, every i >= 1, including predicted background).
    pred_sizes: sizes of the predicted segments restricted to gt foreground (j >= 1).
    singletons: gt-foreground pixels that are predicted background (each its own segment).
    n: gt-foreground pixels.
    """

    joint: np.ndarray
    gt_sizes: np.ndarray
    pred_sizes: np.ndarray
    singletons: int
    n: int


def overlap(gt_labels: np.ndarray, pred_labels: np.ndarray) -> Overlap:
    """Sparse contingency table of two (H, W) integer label images (0 = background) on gt foreground."""
    gt = np.asarray(gt_labels).ravel().astype(np.int64)
    pred = np.asarray(pred_labels).ravel().astype(np.int64)
    if gt.shape != pred.shape:
        raise ValueError(f"label images differ in size: {np.shape(gt_labels)} vs {np.shape(pred_labels)}")
    inside = gt > 0
    gt, pred = gt[inside], pred[inside]
    background = pred == 0
    singletons = int(background.sum())
    gt_fg, pred_fg = gt[~background], pred[~background]
    keys = gt_fg * (int(pred.max(initial=0)) + 1) + pred_fg
    _, joint = np.unique(keys, return_counts=True)
    _, gt_sizes = np.unique(gt, return_counts=True)
    _, pred_sizes = np.unique(pred_fg, return_counts=True)
    return Overlap(joint.astype(np.float64), gt_sizes.astype(np.float64), pred_sizes.astype(np.float64),
                   singletons, int(gt.size))


# --- Rand -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairCounts:
    """Pair counts with N^2 normalisation (ordered pairs, self-pairs included), as Fiji's ``*N2`` stats."""

    tp: float
    fp: float
    fn: float

    def __add__(self, other: "PairCounts") -> "PairCounts":
        return PairCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp > 0 else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn > 0 else 0.0

    @property
    def fscore(self) -> float:
        """V_rand: 2 tp / (2 tp + fp + fn) = sum p_ij^2 / (0.5 sum s_i^2 + 0.5 sum t_j^2)."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator > 0 else 0.0


def rand_pair_counts(gt_labels: np.ndarray, pred_labels: np.ndarray) -> PairCounts:
    """Foreground-restricted Rand pair counts of two (H, W) label images (Fiji ``foregroundRestrictedStatsN2``)."""
    o = overlap(gt_labels, pred_labels)
    sum_ab = float(np.sum(o.joint**2)) + o.singletons
    sum_a = float(np.sum(o.gt_sizes**2))
    sum_b = float(np.sum(o.pred_sizes**2)) + o.singletons
    return PairCounts(tp=sum_ab, fp=sum_b - sum_ab, fn=sum_a - sum_ab)


def rand_scores(gt_labels: np.ndarray, pred_labels: np.ndarray) -> dict[str, float]:
    """V_rand, its split (precision) and merge (recall) scores and the Rand error of two label images."""
    c = rand_pair_counts(gt_labels, pred_labels)
    return {"vrand": c.fscore, "precision": c.precision, "recall": c.recall, "rand_error": 1.0 - c.fscore}


# --- variation of information -----------------------------------------------------------------------


def vinfo_scores(gt_labels: np.ndarray, pred_labels: np.ndarray) -> dict[str, float]:
    """Foreground-restricted information-theoretic scores of two (H, W) label images (natural log).

    Returns V_info (harmonic mean of I/H(gt) and I/H(pred)), both of them, the variation of
    information H(gt|pred) + H(pred|gt) and the two entropies (Fiji ``foregroundRestrictedFscore``).
    """
    o = overlap(gt_labels, pred_labels)
    if o.n == 0:
        return {"vinfo": 0.0, "precision": 0.0, "recall": 0.0, "vi": 0.0, "h_gt": 0.0, "h_pred": 0.0}
    n = float(o.n)
    p_single = o.singletons / n

    def plogp(counts: np.ndarray) -> float:
        p = counts / n
        return float(np.sum(p * np.log(p)))

    sum_a = plogp(o.gt_sizes)
    sum_b = plogp(o.pred_sizes) - p_single * np.log(n)
    sum_ab = plogp(o.joint) - p_single * np.log(n)
    h_gt, h_pred = -sum_a, -sum_b
    h_gt_given_pred, h_pred_given_gt = sum_b - sum_ab, sum_a - sum_ab
    precision = (h_gt - h_gt_given_pred) / h_gt if h_gt != 0 else 0.0
    recall = (h_pred - h_pred_given_gt) / h_pred if h_pred != 0 else 1.0
    if h_gt == 0:
        precision, recall = 0.0, 1.0
    if h_pred == 0:
        precision, recall = 1.0, 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {
        "vinfo": float(f),
        "precision": float(precision),
        "recall": float(recall),
        "vi": float(h_gt_given_pred + h_pred_given_gt),
        "h_gt": float(h_gt),
        "h_pred": float(h_pred),
    }


# --- pixel scores ---------------------------------------------------------------------------------


def pixel_counts(cell_prob: np.ndarray, label: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) pixel counts of the cell class after ``cell_prob > threshold``; any shape."""
    pred = np.asarray(cell_prob) > threshold
    gt = np.asarray(label) > 0
    tp = int(np.count_nonzero(pred & gt))
    fp = int(np.count_nonzero(pred & ~gt))
    fn = int(np.count_nonzero(~pred & gt))
    return tp, fp, fn, int(pred.size - tp - fp - fn)


def pixel_error(cell_prob: np.ndarray, label: np.ndarray, thresholds=DEFAULT_THRESHOLDS) -> float:
    """1 - the best pixel F-score of the cell class over thresholds (Fiji ``getPixelErrorMaximalFScore``)."""
    prob, gt = _as_stacks(cell_prob, label)
    best = 0.0
    for th in thresholds:
        tp, fp, fn, _ = pixel_counts(prob, gt, th)
        denominator = 2 * tp + fp + fn
        best = max(best, 2 * tp / denominator if denominator else 0.0)
    return 1.0 - best


def overlap_scores(cell_prob: np.ndarray, label: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """IoU (Jaccard) and Dice of the cell class at ``cell_prob > threshold``, pooled over all pixels."""
    tp, fp, fn, _ = pixel_counts(cell_prob, label, threshold)
    union = tp + fp + fn
    return {"iou": tp / union if union else 1.0, "dice": 2 * tp / (union + tp) if union else 1.0}


# --- everything at once ---------------------------------------------------------------------------


def isbi_scores(cell_prob: np.ndarray, label: np.ndarray, thresholds=DEFAULT_THRESHOLDS) -> dict:
    """All ISBI 2012 scores of a cell-probability slice (H, W) or stack (S, H, W) against its labels.

    Args:
        cell_prob: float in [0, 1], P(cell) = 1 - P(membrane).
        label: ground truth, 255 or 1 = cell, 0 = membrane; same shape.
        thresholds: binarisation thresholds (``value > th``); the best score over them is reported.

    Returns:
        dict of floats: ``vrand`` (foreground-restricted Rand F-score, the 2012 challenge's Rand score),
        ``vrand_thinned`` (after boundary thinning, per-slice mean: the current leaderboard's V_rand),
        ``vinfo``, ``vinfo_thinned`` (information-theoretic scores, per-slice mean),
        ``rand_error`` = 1 - vrand (the quantity in the U-Net paper's Table 1), ``pixel_error``
        (1 - best pixel F-score), ``iou`` and ``dice`` of the cell class at threshold 0.5; plus
        ``best_threshold_vrand`` and ``best_threshold_vrand_thinned``.
    """
    prob, gt = _as_stacks(cell_prob, label)
    thresholds = [float(t) for t in np.atleast_1d(thresholds)]
    if not thresholds or min(thresholds) < 0 or max(thresholds) >= 1:
        raise ValueError(f"thresholds must lie in [0, 1), got {thresholds}")
    n_slices, n_th = prob.shape[0], len(thresholds)
    rand_counts = [PairCounts(0.0, 0.0, 0.0) for _ in thresholds]
    rand_thin = np.zeros((n_slices, n_th))
    vinfo = np.zeros((n_slices, n_th))
    vinfo_thin = np.zeros((n_slices, n_th))
    for s in range(n_slices):
        gt_labels = label_components(gt[s])
        for t, th in enumerate(thresholds):
            cells = prob[s] > th
            plain = label_components(cells)
            thinned = thin_boundaries(cells)
            rand_counts[t] = rand_counts[t] + rand_pair_counts(gt_labels, plain)
            rand_thin[s, t] = rand_pair_counts(gt_labels, thinned).fscore
            vinfo[s, t] = vinfo_scores(gt_labels, plain)["vinfo"]
            vinfo_thin[s, t] = vinfo_scores(gt_labels, thinned)["vinfo"]
    vrand_per_th = np.array([c.fscore for c in rand_counts])
    vrand_thin_per_th = rand_thin.mean(axis=0)
    vrand = float(vrand_per_th.max())
    scores = {
        "vrand": vrand,
        "vrand_thinned": float(vrand_thin_per_th.max()),
        "vinfo": float(vinfo.mean(axis=0).max()),
        "vinfo_thinned": float(vinfo_thin.mean(axis=0).max()),
        "rand_error": 1.0 - vrand,
        "pixel_error": pixel_error(prob, gt, thresholds),
        **overlap_scores(prob, gt, 0.5),
        "best_threshold_vrand": thresholds[int(vrand_per_th.argmax())],
        "best_threshold_vrand_thinned": thresholds[int(vrand_thin_per_th.argmax())],
    }
    return scores


__all__ = [
    "DEFAULT_THRESHOLDS",
    "Overlap",
    "PairCounts",
    "isbi_scores",
    "label_components",
    "overlap",
    "overlap_scores",
    "pixel_counts",
    "pixel_error",
    "rand_pair_counts",
    "rand_scores",
    "thin_boundaries",
    "vinfo_scores",
]
