"""Fine-tune on painted labels (no Qt): the painted part of a section becomes the training data of `unet_zoo.finetune`."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from unet_zoo.finetuning.finetune import FINETUNE_RECIPE, FinetuneResult, FinetuneStage, finetune
from unet_zoo.training.recipes import Recipe
from unet_zoo.training.trainer import TrainProgress
from unet_zoo.utils.files import cache_dir


def painted_region(labels: np.ndarray) -> tuple[slice, slice]:
    """The bounding box (rows, cols) of the painted (non-zero) pixels of a (H, W) labels section.

    Raises ValueError when nothing is painted.
    """
    painted = np.asarray(labels) != 0
    if not painted.any():
        raise ValueError("nothing is painted in the labels layer: paint the cells of a region (one label per cell) first")
    rows, cols = np.flatnonzero(painted.any(axis=1)), np.flatnonzero(painted.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def finetune_on_painted(
    model: str,
    image: np.ndarray,
    labels: np.ndarray,
    *,
    models_dir: Path | None = None,
    steps: int | None = None,
    recipe: str | Path | Recipe = FINETUNE_RECIPE,
    progress: Callable[[int, int], None] | None = None,
) -> FinetuneResult:
    """Fine-tune `model` on the painted region of one section; returns the result (its `out` is a model folder).

    image: (H, W) section; labels: (H, W) painted labels, one ID per cell, 0 between cells (their borders are
    membrane; see `unet-zoo finetune --label-form instances`). Only the bounding box of the painted pixels is
    used; a part of it is held out for the before/after scores. models_dir: where the new model folder goes
    (default ``~/.cache/unet_zoo/finetuned``). progress: ``progress(step, total_steps)`` while training.
    """
    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape != labels.shape or image.ndim != 2:
        raise ValueError(f"the image section {image.shape} and the labels section {labels.shape} must be the same 2-D shape")
    rows, cols = painted_region(labels)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = (models_dir or cache_dir("finetuned")) / f"{Path(model).name or 'model'}-painted-{stamp}"
    data = folder.with_name(folder.name + "-data")
    data.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(data / "image.tif", np.ascontiguousarray(image[rows, cols]))
    tifffile.imwrite(data / "labels.tif", np.ascontiguousarray(labels[rows, cols]).astype(np.uint32))

    def report(event: FinetuneStage | TrainProgress) -> None:
        if progress is not None and isinstance(event, TrainProgress):
            progress(event.step, event.total_steps)

    return finetune(
        model,
        data / "image.tif",
        data / "labels.tif",
        folder,
        label_form="instances",
        steps=steps,
        recipe=recipe,
        device="cpu",
        run_dir=data / "run",
        callback=report,
    )


__all__ = ["finetune_on_painted", "painted_region"]
