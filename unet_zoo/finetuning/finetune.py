"""Fine-tuning a trained U-Net on your own images and labels, scored before and after on a held-out part.

    result = finetune("isbi-small", "em.tif", "labels.tif", "my-model", foreground="membrane")
    result.before["vrand_thinned"], result.after["vrand_thinned"]

Steps: read the data (`unet_zoo.data.files`, resampled to the model's pixel size) -> score the starting model on
the held-out part -> train it with the settings of `recipes/finetune.toml` (`unet_zoo.training.trainer.Trainer`)
-> score the fine-tuned model the same way -> write a Hub-ready folder (`unet_zoo.hub.publish.write_hub_folder`)
whose card names the starting checkpoint, the data, and the scores before and after.
"""

from __future__ import annotations

import hashlib
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
from unet_zoo.evaluation.evaluate import evaluate_model
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.publish import HUB_FOLDER, hardware_description, write_hub_folder
from unet_zoo.hub.sources import parse_source
from unet_zoo.inference.rescale import model_pixel_size
from unet_zoo.models.provenance import provenance_of
from unet_zoo.pipeline import Predictor
from unet_zoo.training.data import TrainingData, load_files_data, scribble_scores
from unet_zoo.training.recipes import Recipe, load_recipe
from unet_zoo.training.run import latest_run_dir
from unet_zoo.training.run_card import class_weights, run_card_data
from unet_zoo.training.trainer import Trainer, TrainProgress, TrainResult, init_from_record
from unet_zoo.utils.errors import InputError
from unet_zoo.utils.files import atomic_write_bytes, check_output_path, check_replaceable, file_sha256

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
    fine-tuned (`after`) model on the held-out part (`unet_zoo.evaluation.evaluate.evaluate_model` dicts with
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
    record = provenance_of(model)
    sha = record.sha256 if record.kind == "registry" else None
    repo = record.source if record.kind in ("registry", "hub") else None
    if not sha and record.kind in ("folder", "run"):
        for weights in ("model.safetensors", "checkpoint.safetensors"):
            if (Path(record.source) / weights).is_file():
                sha = file_sha256(Path(record.source) / weights)
                break
    return {"name": name, "repo": repo, "sha256": sha}


def _valid_tile(model: nn.Module, tile: int) -> int:
    """`tile`, or the nearest larger input size the model takes."""
    for size in range(tile, tile + 256):
        if model.output_size(size) is not None:  # type: ignore[operator]  # a zoo model's method
            return size
    raise ValueError(f"no valid tile size near {tile} for {provenance_of(model).label}")


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
    record = provenance_of(base)  # the architecture and arguments that rebuild it
    return loaded.with_overrides(
        model={"name": record.architecture, "args": dict(record.args), "init_from": parse_source(model).text()},
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


FINGERPRINT_FILE = "finetune.fingerprint.json"  # in the run folder: what a --resume must match


def _data_digest(path: str) -> str | None:
    """sha256 of a data file, or of a folder's (Zarr store's) files by name and content; None for no path."""
    if not path:
        return None
    target = Path(path)
    if target.is_file():
        return file_sha256(target)
    digest = hashlib.sha256()
    for sub in sorted(p for p in target.rglob("*") if p.is_file()):
        digest.update(str(sub.relative_to(target)).encode())
        digest.update(file_sha256(sub).encode())
    return digest.hexdigest()


def run_fingerprint(
    base: nn.Module, record: dict[str, Any], run_recipe: Recipe, arrays: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """What a fine-tuning run is: the starting model (name and weights sha256), the data (each file's sha256, or
    for data given as `arrays` by name, the array's shape, dtype and the sha256 of its bytes) and the settings
    (the run's recipe, except the number of steps, which a resume may raise)."""
    arrays = arrays or {}
    settings = run_recipe.as_dict()
    settings.get("train", {}).pop("steps", None)
    d = run_recipe.data
    return {
        "base model": {"name": record["name"], "sha256": provenance_of(base).sha256 or record.get("sha256")},
        "data": {
            name: {"path": str(Path(path).resolve()), "sha256": _data_digest(path)}
            for name, path in (
                ("images", d.images),
                ("labels", d.labels),
                ("val_images", d.val_images),
                ("val_labels", d.val_labels),
            )
            if path and name not in arrays
        }
        | {
            name: {
                "array": f"{tuple(a.shape)} {a.dtype}",
                "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
            }
            for name, a in arrays.items()
        },
        "settings": settings,
    }


def check_resume(run_dir: Path, fingerprint: dict[str, Any]) -> None:
    """InputError unless the fine-tuning run in `run_dir` was started from the same base model, data and settings
    (its `FINGERPRINT_FILE`); the message says which of the three differ."""
    path = run_dir / FINGERPRINT_FILE
    if not path.is_file():
        raise InputError(
            f"--resume {run_dir}: not a fine-tuning run folder ({FINGERPRINT_FILE} is missing), so it cannot be checked "
            "to belong to this model and data; start a new run without --resume"
        )
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"--resume {run_dir}: cannot read {path} ({err}); start a new run without --resume") from None
    differ = [key for key in ("base model", "data", "settings") if saved.get(key) != fingerprint[key]]
    if differ:
        raise InputError(
            f"--resume {run_dir}: that run was started with another {' and '.join(differ)} than this command's; "
            "resume it with the command that started it, or start a new run without --resume"
        )


def check_tile_fits(model: nn.Module, data: TrainingData, run_recipe: Recipe) -> None:
    """InputError (with the sizes that work) when the held-out images are smaller than the model's output tile, so
    the run is refused before the base model is scored rather than when training starts."""
    tile = run_recipe.data.tile
    out = model.output_size(tile)  # type: ignore[operator]  # a zoo model's method
    smallest = min(min(image.shape[-2:]) for image in data.val_images) if len(data.val_images) else 0
    if out is not None and out > smallest:
        raise InputError(
            f"the held-out images ({data.held_out}) are {smallest} px on their shorter side, smaller than the "
            f"{out}-px output tile of a {tile}-px training tile: give images (and --val-images) of at least "
            f"{out} x {out} px at the model's pixel size, or a --recipe with a smaller data.tile"
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
    `scribble_scores` of the labelled pixels (stroke accuracy per class, balanced cross-entropy). Predicted by a
    `unet_zoo.Predictor` in torch float32, so the scores before and after compare the weights alone."""
    predictor = Predictor(model, backend="torch", precision="fp32", batch_size=batch_size, device=device)
    if data.sparse:
        probs = predictor.predict(data.val_images)[:, 1]
        return scribble_scores(probs, data.val_labels, data.val_weights > 0)
    return evaluate_model(model, data.val_images, data.val_labels, segment=True, predictor=predictor)


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
    precision: str | None = None,
) -> FinetuneResult:
    """Fine-tune `model` (anything `from_pretrained` takes) on `images` / `labels` and write the Hub folder `out`.

    images, labels: a TIFF (stack), a folder of TIFF/PNG files matched by name, or a Zarr array each, or (H, W) /
    (S, H, W) arrays; labels a binary mask (`foreground`: what its non-zero value is), one ID per cell
    (`label_form` "instances", membrane `boundary_width` px) or strokes (`label_form` "scribbles": 0 = not
    labelled, 1 = membrane, 2 = cell; only labelled pixels train, each class with its recipe share of the loss:
    ``loss.membrane_share``). val_images / val_labels: the
    held-out part (dense labels, also with scribbles); default the last fifth of >= 3 (stroked) slices, else the
    right quarter of each slice. pixel_size: nm per pixel of your data (default: from TIFF / OME-Zarr metadata);
    the data are rescaled to the model's pixel size. steps: override the recipe's
    (300). time_limit: seconds of training in this session, then checkpoint and raise `TimeLimitReached`;
    resume: the run folder or "latest" to continue; refused (InputError) unless that run was started from the same
    base model, data and settings (`run_fingerprint`, kept in the run folder). An existing `out` is replaced only
    with `overwrite` and when it is a Hub folder unet_zoo wrote
    (FileExistsError, checked before any work). callback: `FinetuneStage`s and the trainer's `TrainProgress`.
    precision: "auto" (bf16 autocast where a training step measured faster on this CPU; cached), "bf16" or
    "fp32"; None keeps the recipe's ("auto"). A resumed run keeps the precision it started with.
    """
    if precision is not None and precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    out = Path(out)
    check_output_path(out, folder=True)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; pass --overwrite (overwrite=True) to replace it, or another --out")
    if overwrite:
        check_replaceable(out, what=HUB_FOLDER)  # only a Hub folder unet_zoo wrote is ever replaced
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
    if precision is not None:
        run_recipe = run_recipe.with_overrides(train={"precision": precision})
    given = {"images": images, "labels": labels, "val_images": val_images, "val_labels": val_labels}
    fingerprint = run_fingerprint(base, record, run_recipe, {k: v for k, v in given.items() if isinstance(v, np.ndarray)})
    if resume_dir is not None:
        check_resume(resume_dir, fingerprint)  # the same base model, data and settings, or refused before any work
    report(FinetuneStage("load"))
    data = load_files_data(run_recipe, pairs, val_pairs)
    check_tile_fits(base, data, run_recipe)  # before the base model is scored
    report(FinetuneStage("loaded", note=f"{(data.description or {}).get('train_summary', '')}; held out: {data.held_out}"))
    dev = next(base.parameters()).device
    report(FinetuneStage("score_base"))
    before = score_held_out(base, data, dev, run_recipe.eval.batch_size)
    report(FinetuneStage("train"))
    started = time.perf_counter()
    options: dict[str, Any] = {"out_dir": run_dir, "device": device, "callback": report, "time_limit": time_limit}
    if resume_dir is not None:  # the run's own recipe and checkpoint (the fingerprint matched above)
        trainer = Trainer.from_recipe(run_recipe, data=data, resume=resume_dir, steps=steps, **options)
    else:
        if steps is not None:
            run_recipe = run_recipe.with_overrides(train={"steps": steps})
        start = base.to(memory_format=torch.contiguous_format)  # scoring may have left it channels_last
        trainer = Trainer(start, data, recipe=run_recipe, init_from=init_from_record(str(model), base), **options)
        trainer.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(trainer.run_dir / FINGERPRINT_FILE, json.dumps(fingerprint, indent=2))
    trained = trainer.fit()
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
            f"masked, {class_weights(run_recipe)} cross-entropy on the stroked pixels only (weight 0 elsewhere), in "
            "place of the paper's border weights, which need whole cells"
        )
    card = run_card_data(trained, hardware, after, updates={k: v for k, v in updates.items() if v is not None})
    write_hub_folder(
        trained.model, out, card, scores=after, figures_dir=trained.run_dir, dtype=torch.float16, overwrite=overwrite
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
    "FINGERPRINT_FILE",
    "base_record",
    "check_resume",
    "check_tile_fits",
    "comparison",
    "finetune",
    "finetune_recipe",
    "run_fingerprint",
    "score_held_out",
]
