"""Fine-tuning a trained U-Net on your own images and labels, scored before and after on a held-out part.

    result = finetune("isbi-small", "em.tif", "labels.tif", "my-model", foreground="membrane")
    result.before["vrand_thinned"], result.after["vrand_thinned"]

Steps: read the data (`unet_zoo.data.files`, resampled to the model's pixel size) -> score the starting model on
the held-out part -> train with `recipes/finetune.toml` from the starting weights (the trainer, ``model.init_from``)
-> score the fine-tuned model the same way -> write a Hub-ready folder (`unet_zoo.reproduce.write_hub_folder`)
whose card names the starting checkpoint, the data, and the scores before and after.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from unet_zoo.data.files import Foreground, LabelForm, LabelledImages, labelled_arrays
from unet_zoo.evaluation.isbi import evaluate_model
from unet_zoo.hub.pretrained import from_pretrained, is_path_like
from unet_zoo.inference.rescale import model_pixel_size
from unet_zoo.models.registry import PRETRAINED
from unet_zoo.reproduce import hardware_description, write_hub_folder
from unet_zoo.training.data import TrainingData, load_files_data, scribble_scores
from unet_zoo.training.recipes import Recipe, load_recipe, recipe_from_dict
from unet_zoo.training.trainer import Trainer, TrainProgress, TrainResult, latest_run_dir
from unet_zoo.utils.files import atomic_write_bytes, check_output_path, file_sha256

FINETUNE_RECIPE = "finetune"
COMPARED_SCORES = ("vrand_thinned", "rand_error", "pixel_error", "warping_error")  # threshold-only, as `evaluate`
COMPARED_SEGMENTATION = ("vrand", "rand_error")  # of `unet_zoo.segment`'s cells
COMPARED_STROKES = ("stroke_accuracy", "membrane_accuracy", "cell_accuracy")  # held-out scribbles

DataInput = str | Path | np.ndarray  # a file / folder / Zarr path, or an (H, W) / (S, H, W) array


@dataclass(frozen=True)
class FinetuneStage:
    """What `finetune` does next, reported to its callback: "load" (data and weight maps), "loaded" (with `note`:
    what was read, the label form it decided on, what is held out), "score_base", "train", "score_tuned", "write"
    or "done" (with `result`)."""

    stage: Literal["load", "loaded", "score_base", "train", "score_tuned", "write", "done"]
    result: FinetuneResult | None = None
    note: str = ""


FinetuneCallback = Callable[[FinetuneStage | TrainProgress], None]


@dataclass
class FinetuneResult:
    """A finished fine-tuning: the Hub folder, the run folder, scores of the starting (`before`) and the
    fine-tuned (`after`) model on the held-out part (`unet_zoo.evaluation.isbi.evaluate_model` dicts with
    ``segmentation``), and what the card records about the start and the data."""

    out: Path
    run_dir: Path
    before: dict[str, Any]
    after: dict[str, Any]
    train_result: TrainResult
    base: dict[str, Any]
    held_out: str
    pixel_size: float | None


def base_record(name: str, model: nn.Module) -> dict[str, Any]:
    """Name, Hub repo and weights sha256 of the starting checkpoint (what the card says it was fine-tuned from)."""
    cfg = getattr(model, "pretrained_cfg", None)
    sha = getattr(cfg, "sha256", None)
    repo = PRETRAINED[name].hf_hub_id if name in PRETRAINED else (None if is_path_like(name) or Path(name).exists() else name)
    if not sha and Path(name).is_dir():
        for weights in ("model.safetensors", "checkpoint.safetensors"):
            if (Path(name) / weights).is_file():
                sha = file_sha256(Path(name) / weights)
                break
    return {"name": name, "repo": repo, "sha256": sha}


def _valid_tile(model: nn.Module, tile: int) -> int:
    """`tile`, or the nearest larger input size the model takes."""
    for size in range(tile, tile + 256):
        if model.output_size(size) is not None:  # type: ignore[operator]  # a zoo model's method
            return size
    raise ValueError(f"no valid tile size near {tile} for {getattr(model, 'model_name', 'the model')}")


def finetune_recipe(
    base: nn.Module,
    model: str,
    images: DataInput,
    labels: DataInput,
    *,
    recipe: str | Path | Recipe = FINETUNE_RECIPE,
    foreground: Foreground = "cell",
    label_form: LabelForm = "auto",
    boundary_width: int = 2,
    val_images: DataInput | None = None,
    val_labels: DataInput | None = None,
    pixel_size: float | None = None,
) -> Recipe:
    """The fine-tuning recipe: `recipe` with the starting model's architecture and weights and your data."""
    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if (val_images is None) != (val_labels is None):
        raise ValueError("--val-images and --val-labels go together: give both, or neither")
    zoo_model: Any = base  # a zoo model: model_name and model_args say how to rebuild it
    return loaded.with_overrides(
        model={"name": zoo_model.model_name, "args": dict(zoo_model.model_args), "init_from": str(model)},
        data={
            "source": "files",
            "images": _source_text(images),
            "labels": _source_text(labels),
            "val_images": "" if val_images is None else _source_text(val_images),
            "val_labels": "" if val_labels is None else _source_text(val_labels),
            "foreground": foreground,
            "label_form": label_form,
            "boundary_width": boundary_width,
            "pixel_size": float(pixel_size or 0.0),
            "resample_to": model_pixel_size(base),
            "tile": _valid_tile(base, loaded.data.tile),
        },
    )


def _source_text(data: DataInput) -> str:
    """What the recipe records for an input: its path, or "array (S, H, W) dtype" for in-memory data."""
    if isinstance(data, np.ndarray):
        return f"array {tuple(data.shape)} {data.dtype}"
    return str(data)


def _arrays(
    data: DataInput, labels: DataInput, name: str, foreground: Foreground, label_form: LabelForm, width: int, size: float | None
) -> LabelledImages | None:
    """In-memory images and labels as `LabelledImages` (None when both are paths); a path and an array together
    are refused."""
    is_array = isinstance(data, np.ndarray), isinstance(labels, np.ndarray)
    if not any(is_array):
        return None
    if not all(is_array):
        raise ValueError(f"{name}: give the images and the labels both as arrays or both as paths")
    return labelled_arrays(
        np.asarray(data),
        np.asarray(labels),
        foreground=foreground,
        label_form=label_form,
        boundary_width=width,
        pixel_size=size,
        name=name,
    )


def score_held_out(model: nn.Module, data: TrainingData, device: Any = None, batch_size: int = 2) -> dict[str, Any]:
    """`evaluate`'s scores of `model` on the held-out part: threshold-only ISBI scores and, under
    ``segmentation``, the scores of `unet_zoo.segment`'s cells. Held-out scribbles (``data.sparse``): the
    `scribble_scores` of the labelled pixels (stroke accuracy per class, balanced cross-entropy)."""
    if data.sparse:
        from unet_zoo.inference.tiling import predict_stack

        probs = predict_stack(model, data.val_images, device=device, batch_size=batch_size)[:, 1]
        return scribble_scores(probs, data.val_labels, data.val_weights > 0)
    return evaluate_model(model, data.val_images, data.val_labels, device=device, batch_size=batch_size, segment=True)


def comparison(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(score, before, after) rows: threshold-only scores, then ``segmented <score>`` of the cells."""
    keys = COMPARED_SCORES + COMPARED_STROKES
    rows = [(k, float(before[k]), float(after[k])) for k in keys if before.get(k) is not None and k in after]
    seg_b, seg_a = before.get("segmentation") or {}, after.get("segmentation") or {}
    rows += [(f"segmented {k}", float(seg_b[k]), float(seg_a[k])) for k in COMPARED_SEGMENTATION if k in seg_b and k in seg_a]
    return rows


def finetune(
    model: str,
    images: DataInput,
    labels: DataInput,
    out: str | Path,
    *,
    foreground: Foreground = "cell",
    label_form: LabelForm = "auto",
    boundary_width: int = 2,
    val_images: DataInput | None = None,
    val_labels: DataInput | None = None,
    steps: int | None = None,
    time_limit: float | None = None,
    resume: str | Path | None = None,
    overwrite: bool = False,
    pixel_size: float | None = None,
    recipe: str | Path | Recipe = FINETUNE_RECIPE,
    device: str | None = None,
    run_dir: str | Path | None = None,
    callback: FinetuneCallback | None = None,
) -> FinetuneResult:
    """Fine-tune `model` (anything `from_pretrained` takes) on `images` / `labels` and write the Hub folder `out`.

    images, labels: a TIFF (stack), a folder of TIFF/PNG files matched by name, or a Zarr array each, or (H, W) /
    (S, H, W) arrays; labels a binary mask (`foreground`: what its non-zero value is), one ID per cell
    (`label_form` "instances", membrane `boundary_width` px) or strokes (`label_form` "scribbles": 0 = not
    labelled, 1 = membrane, 2 = cell; only labelled pixels train, class-balanced). val_images / val_labels: the
    held-out part (dense labels, also with scribbles); default the last fifth of >= 3 (stroked) slices, else the
    right quarter of each slice. pixel_size: nm per pixel of your data (default: from TIFF / OME-Zarr metadata);
    the data are rescaled to the model's pixel size. steps: override the recipe's
    (300). time_limit: seconds of training in this session, then checkpoint and raise `TimeLimitReached`;
    resume: the run folder or "latest" to continue. An existing `out` is replaced only with `overwrite`
    (FileExistsError, checked before any work). callback: `FinetuneStage`s and the trainer's `TrainProgress`.
    """
    out = Path(out)
    check_output_path(out, folder=True)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it, or another --out")
    report = callback or (lambda _: None)
    if (val_images is None) != (val_labels is None):
        raise ValueError("--val-images and --val-labels go together: give both, or neither")
    pairs = _arrays(images, labels, "array", foreground, label_form, boundary_width, pixel_size)
    val_pairs = None
    if val_images is not None and val_labels is not None:
        val_pairs = _arrays(val_images, val_labels, "held-out array", foreground, "auto", boundary_width, pixel_size)
    base = from_pretrained(model, device=device)
    record = base_record(str(model), base)
    resume_dir = latest_run_dir(FINETUNE_RECIPE) if resume == "latest" else (Path(resume) if resume else None)
    if resume_dir is not None and (resume_dir / "recipe.json").is_file():
        run_recipe = recipe_from_dict(json.loads((resume_dir / "recipe.json").read_text()))
    else:
        run_recipe = finetune_recipe(
            base,
            model,
            images,
            labels,
            recipe=recipe,
            foreground=foreground,
            label_form=label_form,
            boundary_width=boundary_width,
            val_images=val_images,
            val_labels=val_labels,
            pixel_size=pixel_size,
        )
    report(FinetuneStage("load"))
    data = load_files_data(run_recipe, pairs, val_pairs)
    report(FinetuneStage("loaded", note=f"{(data.description or {}).get('train_summary', '')}; held out: {data.held_out}"))
    dev = next(base.parameters()).device
    report(FinetuneStage("score_base"))
    before = score_held_out(base, data, dev, run_recipe.eval.batch_size)
    report(FinetuneStage("train"))
    started = time.perf_counter()
    trained = Trainer(
        run_recipe,
        out_dir=run_dir,
        device=device,
        resume=resume_dir,
        steps=steps,
        callback=report,
        data=data,
        time_limit=time_limit,
    ).run()
    report(FinetuneStage("score_tuned"))
    after = score_held_out(trained.model, data, next(trained.model.parameters()).device, run_recipe.eval.batch_size)
    report(FinetuneStage("write"))
    hardware = hardware_description(next(trained.model.parameters()).device)
    described = data.description or {}
    updates = {
        "dataset": described.get("train_summary"),
        "held_out": data.held_out,
        "held_out_split": data.held_out,
        "fine_tuned_from": ", ".join(f"{k} {v}" for k, v in record.items() if v),
        "held_out_data": described.get("held_out_summary"),
        "pixel_size_nm": data.pixel_size or run_recipe.data.resample_to or None,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "scores_before_and_after": "; ".join(f"{k} {b:.4f} -> {a:.4f}" for k, b, a in comparison(before, after)),
    }
    if str((described.get("train") or {}).get("label_form", "")).startswith("scribbles"):
        updates["loss"] = (
            "masked, class-balanced cross-entropy on the stroked pixels only (weight 0 elsewhere; each class weighs "
            "half), in place of the paper's border weights, which need whole cells"
        )
    write_hub_folder(
        trained,
        after,
        out,
        hardware,
        dtype=torch.float16,
        overwrite=overwrite,
        training_updates={k: v for k, v in updates.items() if v is not None},
    )
    summary = {"fine_tuned_from": record, "held_out": data.held_out, "data": described, "before": before, "after": after}
    atomic_write_bytes(out / "finetune.json", json.dumps(summary, indent=2, default=str))
    result = FinetuneResult(out, trained.run_dir, before, after, trained, record, data.held_out, data.pixel_size)
    report(FinetuneStage("done", result))
    return result


__all__ = [
    "FINETUNE_RECIPE",
    "FinetuneCallback",
    "FinetuneResult",
    "FinetuneStage",
    "base_record",
    "comparison",
    "finetune",
    "finetune_recipe",
    "score_held_out",
]
