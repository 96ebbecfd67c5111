"""The ISBI 2012 challenge's segmentation scores, as the organisers' Fiji scripts compute them.

Followed: Trainable_Segmentation (fiji/Trainable_Segmentation), package ``trainableSegmentation.metrics``:
``RandError.getForegroundRestrictedRandIndexMaximalFScore`` / ``foregroundRestrictedStatsN2`` (V_rand),
``RandError.getMaximalVRandAfterThinning(min, max, step, perSliceAverage=true)`` (V_rand after thinning),
``VariationOfInformation.getMaximalVInfoAfterThinning`` / ``foregroundRestrictedFscore`` (V_info),
``PixelError.getPixelErrorMaximalFScore`` (pixel error) and
``WarpingError.getMinimumSplitsAndMergersErrorValue`` (warping error, Jain et al. 2010; details in the
warping-error section below); see also Arganda-Carreras et al. (2015),
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
  thinning average the per-slice scores (Fiji's per-slice average); pixel F-score sums pixel counts;
  the warping error sums split and merge pixels over slices, then takes the best threshold (lowest).

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
        raise ValueError(f"label must be binary: 255 or 1 = cell, 0 = membrane; found values {values[:10].tolist()}")
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
    return Overlap(joint.astype(np.float64), gt_sizes.astype(np.float64), pred_sizes.astype(np.float64), singletons, int(gt.size))


# --- Rand -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairCounts:
    """Pair counts with N^2 normalisation (ordered pairs, self-pairs included), as Fiji's ``*N2`` stats."""

    tp: float
    fp: float
    fn: float

    def __add__(self, other: PairCounts) -> PairCounts:
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


# --- warping error --------------------------------------------------------------------------------
#
# Followed: Jain et al. (2010), "Boundary learning by optimization with topological constraints", CVPR,
# as the challenge organisers implemented it in Trainable_Segmentation (fiji/Trainable_Segmentation),
# ``trainableSegmentation.metrics.WarpingError``: ``simplePointWarp2d`` (simple-point warping),
# ``classifyMismatches2d`` / ``clusterMismatchesByType`` (error types) and
# ``getMinimumSplitsAndMergersErrorValue(0.0, 0.9, 0.1, false)`` (the challenge's warping error).
#
# - The ground truth (cell = 1) is warped towards the binarised prediction (``value > th``): every pixel
#   where they differ is flipped in the ground truth if it is a *simple point* there, i.e. flipping it
#   changes no topology with 4-connected cells and 8-connected membrane (Fiji: ``simple2DBertrand(patch, 4)``,
#   the 3x3 patch embedded in a 3-D neighbourhood and tested with 6/26 connectivity, which is that 2-D test).
# - Order: Fiji lists the mismatches column by column (x outer, y inner) and stably sorts them by
#   |prediction - th|, largest first; each pass visits them in that order, flipping in place, and passes
#   repeat until one flips nothing. The slice is padded with one pixel of membrane while warping.
# - Error types of the pixels left (4-connected cells of the warped ground truth, the pixel's in-image
#   8-neighbours): a membrane pixel touching >= 2 cells is a MERGE; a cell pixel touching >= 2 cells, or
#   touching one cell plus membrane whose removal leaves >= 2 cells among its neighbours, is a SPLIT;
#   the rest are hole/object additions and deletions.
# - Challenge value: (number of split + merge pixels, summed over slices) / (number of pixels), minimised
#   over the thresholds (one threshold for the whole stack; clusterByError=false counts pixels, not
#   clusters). ``errors="all"`` gives Jain's plain warping error instead: every pixel left, per slice
#   divided by the slice size and averaged (Fiji ``getMetricValue(th)``), also minimised over thresholds.

# The 8 neighbours of a pixel, bit k of a neighbourhood code, as (dy, dx).
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_EIGHT_CONNECTED = ndi.generate_binary_structure(2, 2)


def _ring_patch(code: int) -> np.ndarray:
    """The 3x3 bool patch of a neighbourhood code (centre False)."""
    patch = np.zeros((3, 3), bool)
    for k, (dy, dx) in enumerate(_RING):
        patch[1 + dy, 1 + dx] = bool(code >> k & 1)
    return patch


def simple_point_table() -> np.ndarray:
    """(256,) bool: is a pixel with this 8-neighbourhood code simple (4-connected cells, 8-connected membrane)?

    Code bit k is neighbour ``_RING[k]`` (row-major, centre skipped) being a cell. A point is simple iff
    exactly one 4-connected cell component of the 3x3 ring touches it 4-adjacently and the ring's membrane
    forms exactly one 8-connected component (Bertrand & Malandain's topological numbers T4 = T8 = 1);
    the answer does not depend on the centre's own value.
    """
    table = np.zeros(256, bool)
    for code in range(256):
        cells = _ring_patch(code)
        labels, _ = ndi.label(cells, structure=_FOUR_CONNECTED)
        touching = {labels[0, 1], labels[1, 0], labels[1, 2], labels[2, 1]} - {0}
        membrane = ~cells
        membrane[1, 1] = False
        _, n_membrane = ndi.label(membrane, structure=_EIGHT_CONNECTED)
        table[code] = len(touching) == 1 and n_membrane == 1
    return table


_SIMPLE = simple_point_table()


def simple_point_warp(label: np.ndarray, cell_prob: np.ndarray, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Warp a (H, W) ground truth towards ``cell_prob > threshold`` by flipping simple points only.

    Args:
        label: (H, W) ground truth, nonzero = cell.
        cell_prob: (H, W) P(cell) in [0, 1] (or a binary map).
        threshold: binarisation threshold of the prediction.

    Returns:
        (warped, mismatches): the warped (H, W) bool ground truth and the (N, 2) int (y, x) pixels where
        it still differs from the binarised prediction, in Fiji's visiting order.
    """
    gt = np.asarray(label) > 0
    prob = np.asarray(cell_prob, dtype=np.float64)
    height, width = gt.shape
    stride = width + 2
    source = np.zeros((height + 2, width + 2), np.uint8)  # one pixel of membrane around the slice
    source[1:-1, 1:-1] = gt
    target = np.zeros_like(source)
    target[1:-1, 1:-1] = prob > threshold
    ys, xs = np.nonzero(source != target)
    column_major = np.lexsort((ys, xs))
    ys, xs = ys[column_major], xs[column_major]
    # Fiji keys: (float) |pixel - th| with the pixel as float32, sorted descending and stably.
    key = np.abs(prob[ys - 1, xs - 1].astype(np.float32).astype(np.float64) - threshold).astype(np.float32)
    order = np.argsort(-key, kind="stable")
    todo = (ys[order] * stride + xs[order]).tolist()

    s = bytearray(source.tobytes())
    lut = bytes(_SIMPLE.astype(np.uint8))
    a, b, c = stride + 1, stride, stride - 1
    # Pass 1 visits every mismatch.
    left = []
    for i in todo:
        if lut[
            s[i - a]
            | s[i - b] << 1
            | s[i - c] << 2
            | s[i - 1] << 3
            | s[i + 1] << 4
            | s[i + c] << 5
            | s[i + b] << 6
            | s[i + a] << 7
        ]:
            s[i] ^= 1
        else:
            left.append(i)
    # Later passes: a pixel found non-simple stays so until a neighbour flips ("dirty"), so only dirty
    # pixels are tested again; the result is the same as Fiji's full passes.
    if left and len(left) < len(todo):
        current = np.frombuffer(bytes(s), np.uint8).reshape(source.shape)
        changed = ndi.binary_dilation(current != source, structure=_EIGHT_CONNECTED)
        dirty = bytearray(changed.astype(np.uint8).tobytes())
        offsets = (-a, -b, -c, -1, 1, c, b, a)
        while left:
            still, flipped = [], False
            for i in left:
                if dirty[i]:
                    dirty[i] = 0
                    if lut[
                        s[i - a]
                        | s[i - b] << 1
                        | s[i - c] << 2
                        | s[i - 1] << 3
                        | s[i + 1] << 4
                        | s[i + c] << 5
                        | s[i + b] << 6
                        | s[i + a] << 7
                    ]:
                        s[i] ^= 1
                        flipped = True
                        for o in offsets:
                            dirty[i + o] = 1
                        continue
                still.append(i)
            left = still
            if not flipped:
                break
    warped = np.frombuffer(bytes(s), np.uint8).reshape(source.shape)[1:-1, 1:-1].astype(bool)
    left_arr = np.asarray(left, dtype=np.int64)
    mismatches = np.stack([left_arr // stride - 1, left_arr % stride - 1], axis=1)
    return warped, mismatches


def _ring_piece_table() -> np.ndarray:
    """(256,) int: number of 4-connected components among the set bits of a neighbourhood code (centre excluded)."""
    return np.array([ndi.label(_ring_patch(code), structure=_FOUR_CONNECTED)[1] for code in range(256)], np.int8)


_RING_PIECES = _ring_piece_table()


def _removal_splits(components: np.ndarray, box: tuple, y: int, x: int) -> bool:
    """Does removing cell pixel (y, x) leave its 8-neighbours of the same 4-connected cell in >= 2 pieces?

    Exact, like Fiji's relabelling of the whole slice, but looks in growing windows first: pieces joined
    inside a window are joined globally, and a piece that does not reach the window's edge is complete.
    """
    own = components[y, x]
    height, width = components.shape
    ring = [
        (y + dy, x + dx) for dy, dx in _RING if 0 <= y + dy < height and 0 <= x + dx < width and components[y + dy, x + dx] == own
    ]
    for radius in (4, 16, 64, None):
        if radius is None:
            y0, y1, x0, x1 = box[0].start, box[0].stop, box[1].start, box[1].stop
        else:
            y0, y1 = max(box[0].start, y - radius), min(box[0].stop, y + radius + 1)
            x0, x1 = max(box[1].start, x - radius), min(box[1].stop, x + radius + 1)
        mask = components[y0:y1, x0:x1] == own
        mask[y - y0, x - x0] = False
        pieces, _ = ndi.label(mask, structure=_FOUR_CONNECTED)
        ids = {int(pieces[ny - y0, nx - x0]) for ny, nx in ring}
        if len(ids) <= 1:
            return False
        if (y0, y1, x0, x1) == (box[0].start, box[0].stop, box[1].start, box[1].stop):
            return True
        edge = set()  # pieces reaching a window edge that is not the cell's bounding-box edge
        if y0 > box[0].start:
            edge.update(pieces[0].tolist())
        if y1 < box[0].stop:
            edge.update(pieces[-1].tolist())
        if x0 > box[1].start:
            edge.update(pieces[:, 0].tolist())
        if x1 < box[1].stop:
            edge.update(pieces[:, -1].tolist())
        if ids - edge:
            return True
    raise AssertionError("unreachable: the last window is the whole cell")


def _articulation_points(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of a 4-connected (H, W) bool mask whose removal disconnects their component.

    Iterative Tarjan depth-first search over the 4-neighbour pixel graph (every component of the mask).
    """
    height, width = mask.shape
    stride = width + 2
    cells = np.pad(mask, 1).ravel().tolist()
    size = len(cells)
    disc, low = [0] * size, [0] * size
    cut = bytearray(size)
    offsets = (-stride, -1, 1, stride)
    timer = 0
    for root in np.flatnonzero(np.pad(mask, 1).ravel()).tolist():
        if disc[root]:
            continue
        timer += 1
        disc[root] = low[root] = timer
        root_children = 0
        stack = [[root, -1, 0]]
        while stack:
            frame = stack[-1]
            u, k = frame[0], frame[2]
            if k < 4:
                frame[2] = k + 1
                v = u + offsets[k]
                if not cells[v]:
                    continue
                if not disc[v]:
                    timer += 1
                    disc[v] = low[v] = timer
                    stack.append([v, u, 0])
                elif v != frame[1] and disc[v] < low[u]:
                    low[u] = disc[v]
                continue
            stack.pop()
            if not stack:
                break
            parent = stack[-1][0]
            if low[u] < low[parent]:
                low[parent] = low[u]
            if parent == root:
                root_children += 1
            elif low[u] >= disc[parent]:
                cut[parent] = 1
        cut[root] = root_children >= 2
    return np.frombuffer(bytes(cut), np.uint8).reshape(height + 2, width + 2)[1:-1, 1:-1].astype(bool)


def count_topology_errors(warped: np.ndarray, mismatches: np.ndarray) -> tuple[int, int]:
    """(splits, merges) among the (N, 2) (y, x) pixels left after `simple_point_warp` (Fiji ``classifyMismatches2d``).

    With the 4-connected cells of `warped` (id > 0; membrane id 0) and each pixel's in-slice 8-neighbours:
    a membrane pixel next to >= 3 distinct ids merges, a cell pixel next to >= 3 ids splits, and so does a
    cell pixel next to 2 ids whose removal leaves its neighbours in >= 2 pieces (Fiji relabels the slice).
    Every other pixel left is a hole or object addition/deletion and is not counted.
    """
    if len(mismatches) == 0:
        return 0, 0
    components = label_components(warped)
    ys, xs = mismatches[:, 0], mismatches[:, 1]
    padded = np.pad(components, 1, constant_values=-1)  # -1: outside the slice, not a neighbour
    ring = np.stack([padded[ys + 1 + dy, xs + 1 + dx] for dy, dx in _RING], axis=1)
    ordered = np.sort(ring, axis=1)
    new = np.concatenate([np.ones((len(ring), 1), bool), ordered[:, 1:] != ordered[:, :-1]], axis=1)
    distinct = ((ordered >= 0) & new).sum(axis=1)
    is_cell = warped[ys, xs]
    merges = int(np.count_nonzero(~is_cell & (distinct >= 3)))
    splits = int(np.count_nonzero(is_cell & (distinct >= 3)))
    # Cell pixels next to one cell and membrane: only those whose same-cell neighbours are not already
    # one 4-connected piece within the 3x3 ring can split it.
    own_code = ((ring == components[ys, xs][:, None]) << np.arange(8)).sum(axis=1)
    candidates = is_cell & (distinct == 2) & (_RING_PIECES[own_code] >= 2)
    if candidates.any():
        # Removing the pixel splits its cell iff it is an articulation point of the cell's pixel graph
        # (every piece left touches it 4-adjacently). Cells with many candidates: one depth-first search
        # over the cell; cells with few: growing windows around each candidate.
        boxes = ndi.find_objects(components)
        cand = mismatches[candidates]
        owners = components[cand[:, 0], cand[:, 1]]
        sizes = np.bincount(components.ravel())
        for own in np.unique(owners).tolist():
            box = boxes[own - 1]
            points = cand[owners == own]
            if len(points) * 50 > sizes[own]:
                cut = _articulation_points(components[box] == own)
                splits += int(np.count_nonzero(cut[points[:, 0] - box[0].start, points[:, 1] - box[1].start]))
            else:
                splits += sum(_removal_splits(components, box, int(y), int(x)) for y, x in points)
    return splits, merges


def _warping_counts(prob: np.ndarray, gt: np.ndarray, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(splits + merges, all pixels left) per slice and threshold, each (S, T) int."""
    topo = np.zeros((prob.shape[0], len(thresholds)), np.int64)
    left = np.zeros_like(topo)
    for s in range(prob.shape[0]):
        for t, th in enumerate(thresholds):
            warped, mismatches = simple_point_warp(gt[s], prob[s], th)
            topo[s, t] = sum(count_topology_errors(warped, mismatches))
            left[s, t] = len(mismatches)
    return topo, left


def warping_error(
    cell_prob_or_binary: np.ndarray,
    label: np.ndarray,
    threshold=DEFAULT_THRESHOLDS,
    errors: str = "splits_and_mergers",
) -> float:
    """The ISBI 2012 warping error of a slice (H, W) or stack (S, H, W): a fraction of pixels, lower is better.

    Args:
        cell_prob_or_binary: P(cell) = 1 - P(membrane) in [0, 1], or a binary cell map; same shape as label.
        label: ground truth, 255 or 1 = cell, 0 = membrane.
        threshold: one binarisation threshold (``value > th``), or several: the minimum over them is
            returned (the challenge: 0.0, 0.1, ..., 0.9, one threshold for the whole stack).
        errors: ``"splits_and_mergers"`` (the challenge's "minimum splits and mergers warping error":
            split + merge pixels after warping / all pixels) or ``"all"`` (Jain's warping error: every
            pixel that cannot be warped / all pixels).
    """
    if errors not in ("splits_and_mergers", "all"):
        raise ValueError(f"errors must be 'splits_and_mergers' or 'all', got {errors!r}")
    prob, gt = _as_stacks(cell_prob_or_binary, label)
    thresholds = [float(t) for t in np.atleast_1d(threshold)]
    topo, left = _warping_counts(prob, gt, thresholds)
    counts = topo if errors == "splits_and_mergers" else left
    return float(counts.sum(axis=0).min() / prob.size)


# --- everything at once ---------------------------------------------------------------------------


def isbi_scores(cell_prob: np.ndarray, label: np.ndarray, thresholds=DEFAULT_THRESHOLDS, warping: bool = True) -> dict:
    """All ISBI 2012 scores of a cell-probability slice (H, W) or stack (S, H, W) against its labels.

    Args:
        cell_prob: float in [0, 1], P(cell) = 1 - P(membrane).
        label: ground truth, 255 or 1 = cell, 0 = membrane; same shape.
        thresholds: binarisation thresholds (``value > th``); the best score over them is reported.
        warping: compute ``warping_error`` (the slowest score: about 1 s per 512x512 slice for the ten
            default thresholds on 2 CPU cores); False leaves it and ``best_threshold_warping`` out.

    Returns:
        dict of floats: ``vrand`` (foreground-restricted Rand F-score, the 2012 challenge's Rand score),
        ``vrand_thinned`` (after boundary thinning, per-slice mean: the current leaderboard's V_rand),
        ``vinfo``, ``vinfo_thinned`` (information-theoretic scores, per-slice mean),
        ``rand_error`` = 1 - vrand (the quantity in the U-Net paper's Table 1), ``pixel_error``
        (1 - best pixel F-score), ``iou`` and ``dice`` of the cell class at threshold 0.5,
        ``warping_error`` (the challenge's minimum splits-and-mergers warping error, see `warping_error`:
        split + merge pixels summed over slices / all pixels, at the one best threshold for the stack);
        plus ``best_threshold_vrand``, ``best_threshold_vrand_thinned`` and ``best_threshold_warping``.
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
    if warping:
        topology_errors = _warping_counts(prob, gt, thresholds)[0].sum(axis=0)
        scores["warping_error"] = float(topology_errors.min() / prob.size)
        scores["best_threshold_warping"] = thresholds[int(topology_errors.argmin())]
    return scores


# --- scores of a segmentation (label image) ---------------------------------------------------------


def segmentation_scores(segments: np.ndarray, label: np.ndarray) -> dict:
    """The ISBI 2012 segment scores of a label image (H, W) or stack (S, H, W) against the ground truth.

    The sibling of `isbi_scores` for a segmentation instead of a probability map: nothing is thresholded
    or thinned; the segments are the label image's IDs as given (0 = background: each such pixel inside a
    ground-truth cell is a singleton segment, as a predicted-membrane pixel in `isbi_scores`). Ground-truth
    segments are the 4-connected components of its cells; only ground-truth cell pixels count.
    Pooled like Fiji: V_rand sums the pair counts of all slices; V_info averages the per-slice scores.

    Args:
        segments: integer label image(s), any IDs (e.g. `unet_zoo.segment`'s output).
        label: ground truth, 255 or 1 = cell, 0 = membrane; same shape.

    Returns:
        dict of floats: ``vrand`` and ``rand_error`` = 1 - vrand, ``vrand_split`` / ``vrand_merge`` (low split =
        cells cut apart, low merge = cells fused), ``vinfo`` and its parts
        ``vinfo_split`` = I/H(segments) and ``vinfo_merge`` = I/H(gt), ``segments_per_slice`` and ``num_slices``.
    """
    seg, gt = np.asarray(segments), np.asarray(label)
    if seg.shape != gt.shape:
        raise ValueError(f"segments {seg.shape} and label {gt.shape} must have the same shape (H, W) or (S, H, W)")
    if seg.ndim not in (2, 3):
        raise ValueError(f"expected a 2-D slice (H, W) or a 3-D stack (S, H, W), got shape {seg.shape}")
    if seg.dtype.kind not in "iu":
        raise TypeError(f"segments must be an integer label image, got dtype {seg.dtype}; for probabilities use isbi_scores")
    if seg.size and seg.min() < 0:
        raise ValueError("segment IDs must be >= 0 (0 = background)")
    values = np.unique(gt)
    if not set(values.tolist()) <= {0, 1, 255}:
        raise ValueError(f"label must be binary: 255 or 1 = cell, 0 = membrane; found values {values[:10].tolist()}")
    if seg.ndim == 2:
        seg, gt = seg[None], gt[None]
    counts = PairCounts(0.0, 0.0, 0.0)
    info = []
    for s in range(seg.shape[0]):
        gt_labels = label_components(gt[s] > 0)
        counts = counts + rand_pair_counts(gt_labels, seg[s])
        info.append(vinfo_scores(gt_labels, seg[s]))
    return {
        "vrand": counts.fscore,
        "rand_error": 1.0 - counts.fscore,
        # Arganda-Carreras et al. (2015): split = sum p_ij^2 / sum over gt sizes^2 (falls when cells are cut),
        # merge = sum p_ij^2 / sum over predicted sizes^2 (falls when cells are fused); likewise for V_info
        "vrand_split": counts.recall,
        "vrand_merge": counts.precision,
        "vinfo": float(np.mean([v["vinfo"] for v in info])),
        "vinfo_split": float(np.mean([v["recall"] for v in info])),
        "vinfo_merge": float(np.mean([v["precision"] for v in info])),
        "segments_per_slice": float(np.mean([len(np.unique(s[s > 0])) for s in seg])),
        "num_slices": int(seg.shape[0]),
    }


__all__ = [
    "DEFAULT_THRESHOLDS",
    "Overlap",
    "PairCounts",
    "count_topology_errors",
    "isbi_scores",
    "label_components",
    "overlap",
    "overlap_scores",
    "pixel_counts",
    "pixel_error",
    "rand_pair_counts",
    "rand_scores",
    "segmentation_scores",
    "simple_point_table",
    "simple_point_warp",
    "thin_boundaries",
    "vinfo_scores",
    "warping_error",
]
