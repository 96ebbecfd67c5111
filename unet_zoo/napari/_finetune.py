"""Fine-tune on painted labels (no Qt): painted cells of a section, or membrane and cell strokes on any sections of a
stack, become the training data of `unet_zoo.finetune`, passed as arrays (no files are written besides the model)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unet_zoo.data.files import LabelForm
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
    return _finetune_arrays(
        model,
        np.ascontiguousarray(image[rows, cols]),
        np.ascontiguousarray(labels[rows, cols]).astype(np.uint32),
        "instances",
        "painted",
        models_dir,
        steps,
        recipe,
        progress,
    )


def finetune_on_strokes(
    model: str,
    images: np.ndarray,
    strokes: np.ndarray,
    *,
    models_dir: Path | None = None,
    steps: int | None = None,
    recipe: str | Path | Recipe = FINETUNE_RECIPE,
    progress: Callable[[int, int], None] | None = None,
) -> FinetuneResult:
    """Fine-tune `model` on membrane and cell strokes painted on any sections of a stack.

    images: (H, W) or (S, H, W) sections; strokes: the same shape, 0 = not painted, 1 = membrane, 2 = cell
    interior (`unet-zoo finetune --label-form scribbles`). Only sections with strokes train; a part of their
    strokes is held out for the before/after scores. Returns the result; its `out` is the new model folder in
    `models_dir` (default ``~/.cache/unet_zoo/finetuned``), the only thing written to disk.
    progress: ``progress(step, total_steps)`` while training.
    """
    images, strokes = np.asarray(images), np.asarray(strokes)
    if images.shape != strokes.shape or images.ndim not in (2, 3):
        raise ValueError(f"the image {images.shape} and the strokes {strokes.shape} must have the same (H, W) or (S, H, W) shape")
    if not strokes.any():
        raise ValueError("nothing is painted: paint membrane (label 1) and cell (label 2) strokes in the labels layer first")
    return _finetune_arrays(model, images, strokes, "scribbles", "strokes", models_dir, steps, recipe, progress)


def _finetune_arrays(
    model: str,
    images: np.ndarray,
    labels: np.ndarray,
    form: LabelForm,
    kind: str,
    models_dir: Path | None,
    steps: int | None,
    recipe: str | Path | Recipe,
    progress: Callable[[int, int], None] | None,
) -> FinetuneResult:
    """`unet_zoo.finetune` on in-memory arrays into a new folder of `models_dir`; the run folder is removed after."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = (models_dir or cache_dir("finetuned")) / f"{Path(model).name or 'model'}-{kind}-{stamp}"
    run_dir = folder.with_name(folder.name + "-run")

    def report(event: FinetuneStage | TrainProgress) -> None:
        if progress is not None and isinstance(event, TrainProgress):
            progress(event.step, event.total_steps)

    try:
        return finetune(
            model,
            images,
            labels,
            folder,
            label_form=form,
            steps=steps,
            recipe=recipe,
            device="cpu",
            run_dir=run_dir,
            callback=report,
        )
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # checkpoints of the run: the model folder keeps what matters


__all__ = ["finetune_on_painted", "finetune_on_strokes", "painted_region"]
