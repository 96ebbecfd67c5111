"""Evaluate a model on ISBI 2012 slices with the challenge's scores, and set them beside the paper's.

The paper's Table 1 reports the U-Net on the challenge *test* set, scored by the organisers. The test
labels were never released, so the numbers we can compute come from held-out *training* slices
(a contiguous block, see `unet_zoo.data.split_slices`); they are comparable in kind, not identical in data.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from torch import nn

from .data import load_isbi, split_slices
from .metrics import isbi_scores
from .paper import PAPER_TABLE1
from .tiling import predict_stack

HELD_OUT_NOTE = (
    "Ours: held-out ISBI 2012 training slices (the test labels were never released). "
    "Paper: u-net on the challenge test set, scored by the organisers (Table 1)."
)

_ROWS = [
    ("warping_error", "Warping error", True),
    ("rand_error", "Rand error (1 - V_rand, 2012 definition)", True),
    ("pixel_error", "Pixel error (1 - best pixel F-score)", True),
    ("vrand_thinned", "V_rand after thinning (leaderboard)", False),
    ("vinfo_thinned", "V_info after thinning (leaderboard)", False),
    ("vrand", "V_rand", False),
    ("vinfo", "V_info", False),
    ("iou", "IoU of cells (threshold 0.5)", False),
    ("dice", "Dice of cells (threshold 0.5)", False),
]


def evaluate_model(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    tta: bool = False,
    device: Any = None,
    batch_size: int = 4,
    tile: int | None = None,
    progress: Any = None,
    warping: bool = True,
) -> dict[str, Any]:
    """Predict (S, H, W) uint8 `images` and score them against (S, H, W) `labels` (1 or 255 = cell).

    The cell probability is softmax channel 1 (channel 0 = membrane). Returns `isbi_scores` plus
    ``seconds_per_slice`` (inference wall time, excluding scoring), ``num_slices`` and ``tta``.
    `progress`, if given, is called with each finished slice index. warping=False skips the warping
    error (the slowest score, ~0.6-3 s per 512x512 slice on 2 CPU cores).
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 2:
        images, labels = images[None], labels[None]
    if images.ndim != 3 or images.shape != labels.shape:
        raise ValueError(f"images {images.shape} and labels {labels.shape} must both be (S, H, W)")
    num_classes = int(getattr(model, "num_classes", 2))
    if num_classes < 2:
        raise ValueError(f"evaluation needs a model with >= 2 output classes (1 = cell), got {num_classes}")
    start = time.perf_counter()
    probs = predict_stack(model, images, progress=progress, tile=tile, batch_size=batch_size, device=device, tta=tta)
    seconds = time.perf_counter() - start
    scores = isbi_scores(probs[:, 1], labels, warping=warping)
    scores.update(seconds_per_slice=seconds / len(images), num_slices=len(images), tta=bool(tta))
    return scores


def evaluate_isbi(
    model: nn.Module,
    data_dir: str | None = None,
    split: str = "val",
    fold: int = 4,
    k: int = 5,
    **kwargs: Any,
) -> dict[str, Any]:
    """`evaluate_model` on ISBI 2012 training slices: split "val" (held-out fold), "train" or "all".

    Adds ``split``, ``slices`` (indices) and ``data_dir`` to the result; kwargs go to `evaluate_model`.
    """
    if split not in ("val", "train", "all"):
        raise ValueError(f"split must be 'val', 'train' or 'all', got {split!r}")
    data = load_isbi(data_dir)
    train, val = split_slices(len(data.images), k=k, fold=fold)
    slices = {"val": val, "train": train, "all": list(range(len(data.images)))}[split]
    result = evaluate_model(model, data.images[slices], data.labels[slices], **kwargs)
    result.update(split=split, slices=list(slices), data_dir=str(data.data_dir))
    return result


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6f}" if 0 < abs(value) < 0.01 else f"{value:.4f}"


def comparison_rows(metrics: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, ours, paper) strings for every score in `metrics` or in the paper's Table 1."""
    rows = []
    for key, name, _ in _ROWS:
        ours, paper = metrics.get(key), PAPER_TABLE1.get(key)
        if ours is None and paper is None:
            continue
        rows.append((name, _fmt(ours), _fmt(paper)))
    return rows


def comparison_table(metrics: dict[str, Any], title: str = "ISBI 2012: ours vs. the paper"):
    """A rich Table of `comparison_rows` with the held-out note as its caption."""
    from rich.table import Table

    table = Table(title=title, caption=HELD_OUT_NOTE)
    table.add_column("metric")
    table.add_column("ours", justify="right")
    table.add_column("paper (Table 1)", justify="right")
    for row in comparison_rows(metrics):
        table.add_row(*row)
    return table


def format_comparison(metrics: dict[str, Any], without_tta: dict[str, Any] | None = None) -> str:
    """Plain-text (Markdown) table of our scores beside the paper's Table 1, with the held-out note.

    without_tta: scores of the same model without test-time augmentation, shown as an extra column.
    """
    if without_tta is None:
        lines = ["| metric | ours | paper (Table 1) |", "|---|---:|---:|"]
        lines += [f"| {name} | {ours} | {paper} |" for name, ours, paper in comparison_rows(metrics)]
    else:
        plain = {name: ours for name, ours, _ in comparison_rows(without_tta)}
        lines = ["| metric | ours, with TTA | ours, without TTA | paper (Table 1) |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {ours} | {plain.get(name, '-')} | {paper} |" for name, ours, paper in comparison_rows(metrics)]
    return "\n".join(lines) + "\n\n" + HELD_OUT_NOTE


__all__ = [
    "HELD_OUT_NOTE",
    "PAPER_TABLE1",
    "comparison_rows",
    "comparison_table",
    "evaluate_isbi",
    "evaluate_model",
    "format_comparison",
]
