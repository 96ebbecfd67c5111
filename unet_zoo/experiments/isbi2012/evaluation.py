"""The ISBI 2012 experiment's evaluation: a model scored on the held-out training slices.

The paper's Table 1 reports the U-Net on the challenge *test* set, scored by the organisers. The test labels
were never released, so the numbers we can compute come from held-out *training* slices (a contiguous block,
`unet_zoo.data.split.split_slices`); they are comparable in kind, not identical in data
(`unet_zoo.experiments.isbi2012.paper.format_comparison` sets them beside Table 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from unet_zoo.data.split import split_slices
from unet_zoo.evaluation.evaluate import evaluate_model
from unet_zoo.experiments.isbi2012.data import load_isbi


def evaluate_isbi(
    model: nn.Module,
    data_dir: str | Path | None = None,
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


__all__ = ["evaluate_isbi"]
