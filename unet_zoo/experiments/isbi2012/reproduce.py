"""`unet-zoo reproduce isbi`: train the paper's recipe, score it on held-out slices, compare with Table 1.

For each variant: train per its recipe (`unet_zoo.training.trainer.train`), predict the held-out ISBI 2012
slices with overlap-tile inference and test-time augmentation, compute the challenge scores
(`unet_zoo.evaluation.evaluate.evaluate_model`), print them beside the paper's Table 1 and write a Hub-ready
folder: ``model.safetensors``, ``config.json``, ``README.md`` (a model card with the measured numbers
and every deviation from the paper), ``predictions.png``, ``curves.png`` and ``scores.json``.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from unet_zoo.evaluation.evaluate import evaluate_model
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.serialization import (
    CARD_NAME,
    CONFIG_NAME,
    build_model,
    model_card_text,
    read_config,
    save_weights_and_config,
)
from unet_zoo.hub.sources import source_cards_dir
from unet_zoo.models.checkpoint_names import VARIANT_RECIPES
from unet_zoo.models.registry import PRETRAINED
from unet_zoo.paper import target_results
from unet_zoo.training.recipes import Recipe, load_recipe
from unet_zoo.training.trainer import TrainProgress, TrainResult, latest_run_dir, train
from unet_zoo.utils.files import atomic_write_bytes, check_output_path, check_replaceable, publish_folder, staging_folder

Variant = Literal["original", "padded", "small", "all"]
QUICK_RECIPE = "isbi-quick"
CARDS_DIR = Path("cards")  # outside a source checkout (hub.source_cards_dir() is None): ./cards of the working directory
CARD_METRICS = ("warping_error", "rand_error", "pixel_error")  # the card's table is "lower is better"
SCORE_KEYS = ("warping_error", "rand_error", "pixel_error", "vrand", "vrand_thinned", "vinfo", "vinfo_thinned", "iou", "dice")
STORED_SCORE_TOLERANCE = 1e-3  # largest score change the cast to the stored dtype may cause
# The warping error is a fraction of pixels some 100x smaller than the other scores (paper: 0.000353);
# 5e-5 is about 13 pixels of one 512x512 slice.
STORED_SCORE_TOLERANCES: dict[str, float] = {"warping_error": 5e-5}


@dataclass
class ReproduceResult:
    """One reproduced variant: where its run and Hub folder are, and what it scored on held-out slices."""

    recipe: Recipe
    run_dir: Path
    card_dir: Path
    metrics: dict[str, Any]
    train_seconds: float
    eval_seconds: float
    train_result: TrainResult
    metrics_without_tta: dict[str, Any] | None = None
    stored_check: dict[str, Any] | None = None


@dataclass(frozen=True)
class ReproduceStage:
    """What `reproduce_isbi` starts next, reported to its callback: stage "train", "evaluate" (held-out
    slices, with and without TTA), "check_stored" (the stored weights scored again) or "done" (with `result`)."""

    recipe: Recipe
    stage: Literal["train", "evaluate", "check_stored", "done"]
    result: ReproduceResult | None = None


ReproduceCallback = Callable[[ReproduceStage | TrainProgress], None]
"""Receives `ReproduceStage`s and the trainer's `TrainProgress` reports; the CLI prints them."""


def recipes_for(variant: str, quick: bool = False, recipe: str | None = None) -> list[str]:
    """Recipe names (or paths) to run: `recipe` if given, ``isbi-quick`` with `quick`, else one per variant
    ("all" = all three)."""
    if recipe is not None:
        if quick:
            raise ValueError("--quick and --recipe both choose the recipe; pass one of them")
        return [recipe]
    if quick:
        return [QUICK_RECIPE]
    if variant == "all":
        return list(VARIANT_RECIPES.values())
    if variant not in VARIANT_RECIPES:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join([*VARIANT_RECIPES, 'all'])}")
    return [VARIANT_RECIPES[variant]]


def checkpoint_name(recipe: Recipe) -> str:
    """The published name of what `recipe` trains: ``[recipe] checkpoint`` (e.g. isbi-small for isbi-small-cpu),
    else the recipe's name."""
    return recipe.recipe.checkpoint or recipe.name


def hardware_description(device: Any) -> str:
    """'NVIDIA H100 80GB HBM3' / '2-core CPU (x86_64)' for the card."""
    import torch

    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{os.cpu_count()}-core CPU ({platform.machine()}), torch {torch.__version__.split('+')[0]}"


def training_info(recipe: Recipe, result: TrainResult, hardware: str) -> dict[str, Any]:
    """The card's training section: recipe, data, split, optimiser, loss, time, deviations."""
    o, t = recipe.optimizer, recipe.train
    optimiser = f"SGD, momentum {o.momentum}" if o.name == "sgd" else f"{o.name.capitalize()}, betas {tuple(o.betas)}"
    if o.grad_clip:
        optimiser += f", gradient-norm clip {o.grad_clip}"
    schedule = recipe.schedule.kind + (
        f" with {recipe.schedule.warmup_steps} warm-up steps" if recipe.schedule.warmup_steps else ""
    )
    first, last = result.data.val_slices[0], result.data.val_slices[-1]
    return {
        "recipe": f"recipes/{recipe.name}.toml" + (f" ({recipe.recipe.description})" if recipe.recipe.description else ""),
        "dataset": result.data.source.split(" (")[0] + f", {len(result.data.train_images)} training slices",
        "held_out": f"slices {first}-{last} of the ISBI 2012 training stack (not trained on)",
        "held_out_split": f"slices {first}-{last}",
        "steps": result.step,
        "tiles_seen": result.step * t.batch_size * result.world_size,
        "batch_size": t.batch_size,
        "tile": f"{recipe.data.tile} px",
        **({"pixel_size_nm": float(result.data.pixel_size)} if result.data.pixel_size else {}),
        "optimizer": optimiser,
        "learning_rate": f"{o.lr:g} ({schedule})",
        "augmentation": ", ".join(f"{k}={v}" for k, v in recipe.as_dict()["augment"].items()) or "defaults",
        "loss": f"pixel-wise softmax + weighted cross-entropy (w0={recipe.loss.w0:g}, sigma={recipe.loss.sigma:g} px)",
        "seed": t.seed,
        "hardware": hardware,
        "precision": result.precision,
        "time_s": round(result.seconds, 1),
        **_init_fields(result.init_from),
    }


def _init_fields(init: dict[str, Any] | None) -> dict[str, Any]:
    """The card's lines for a run that started from other weights (recipe model.init_from)."""
    if not init:
        return {}
    before = init.get("train_seconds")
    text = f"{init['source']}" + (f" (weights sha256 {init['sha256'][:12]}...)" if init.get("sha256") else "")
    if before:
        text += f", itself trained {float(before) / 3600:.2f} h"
    return {"initialised_from": text}


def _recipe_card_fields(recipe: Recipe, scores: dict[str, Any]) -> dict[str, Any]:
    """What a card says from its recipe: description, notes, deviations, and the targets checked on `scores`."""
    info = recipe.recipe
    return {
        "description": info.description or None,
        "notes": info.notes or None,
        "deviations": list(info.deviations) or None,
        "targets": target_results(info.targets, scores) or None,
        "target_notes": info.target_notes or None,
    }


def card_data(
    result: TrainResult,
    metrics: dict[str, Any],
    hardware: str,
    metrics_without_tta: dict[str, Any] | None = None,
    stored_check: dict[str, Any] | None = None,
    figures: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Everything the Hub folder says about a reproduced run (`unet_zoo.hub.serialization.CARD_DATA_KEYS`): the
    config.json record and the model card's data, rendered by `unet_zoo.hub.card.render_model_card`."""
    recipe = result.recipe
    name = checkpoint_name(recipe)
    training = training_info(recipe, result, hardware)
    training["deviations"] = recipe.recipe.deviations  # kept in config.json; the card lists them in their own section
    return {
        # Only names that are (or will be) published go into the usage snippet; others load from the folder.
        "checkpoint_name": name if name in VARIANT_RECIPES.values() or name in PRETRAINED else None,
        "metrics": {k: float(metrics[k]) for k in CARD_METRICS if metrics.get(k) is not None},
        "training": training,
        "held_out_scores": metrics,
        "held_out_scores_without_tta": metrics_without_tta,
        "stored_weights": stored_check["summary"] if stored_check else None,
        "figures": figures,
        **_recipe_card_fields(recipe, metrics),
    }


def _write_scores(
    folder: Path, metrics: dict[str, Any], metrics_without_tta: dict[str, Any] | None, stored_check: dict[str, Any] | None
) -> None:
    scores: dict[str, Any] = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool, list))}
    if metrics_without_tta is not None:
        scores["without_tta"] = {k: v for k, v in metrics_without_tta.items() if isinstance(v, (int, float, bool))}
    if stored_check is not None:
        scores["stored_weights"] = stored_check
    atomic_write_bytes(folder / "scores.json", json.dumps(scores, indent=2).encode())


HUB_FOLDER = "Hub folder"  # what `write_hub_folder` marks its folders as (unet_zoo.utils.files.mark_owned)
FIGURES = {"held-out predictions": "predictions.png", "training curves": "curves.png"}  # alt text: file of the run


def write_hub_folder(
    result: TrainResult,
    metrics: dict[str, Any],
    folder: str | Path,
    hardware: str,
    *,
    dtype: Any = None,
    max_shard_size: int | None = None,
    metrics_without_tta: dict[str, Any] | None = None,
    rescore: Callable[[Any], dict[str, Any]] | None = None,
    overwrite: bool = False,
    training_updates: dict[str, Any] | None = None,
) -> tuple[Path, dict[str, Any] | None]:
    """Build the Hub folder of a trained run beside `folder`, then move it into place in one rename.

    Writes model.safetensors (in `dtype`, e.g. torch.float16; None keeps float32; sharded at
    `max_shard_size` bytes) and config.json; with `rescore` (model -> scores), loads those stored weights
    back and scores them, and records `check_stored_weights`'s verdict; then writes README.md (the card,
    once, with everything known), scores.json and the run's PNGs. metrics_without_tta: a second score
    column. training_updates: lines of the card's training section to add or replace (e.g. for data other
    than ISBI 2012). An existing `folder` is replaced only with `overwrite`, and only when it is a Hub folder
    unet_zoo wrote (`unet_zoo.utils.files.check_replaceable`; else FileExistsError, before any work).
    Returns (folder, the stored-weights check or None).
    """
    import torch

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass --overwrite (overwrite=True) to replace it")
    if overwrite:
        check_replaceable(folder, what=HUB_FOLDER)
    staging = staging_folder(folder)
    try:
        model: Any = result.model
        data = card_data(result, metrics, hardware, metrics_without_tta)
        data["training"].update(training_updates or {})
        save_weights_and_config(model, staging, dtype=dtype, card_data=data, max_shard_size=max_shard_size)
        check = None
        if rescore is not None:
            # Read the stored weights back and score them again: the card must describe what users download.
            stored = from_pretrained(staging, device=next(model.parameters()).device)
            check = check_stored_weights(metrics, rescore(stored), str(dtype or torch.float32).removeprefix("torch."))
        figures = {alt: name for alt, name in FIGURES.items() if (result.run_dir / name).is_file()}
        for name in figures.values():
            shutil.copyfile(result.run_dir / name, staging / name)
        data.update(stored_weights=check["summary"] if check else None, figures=figures)
        atomic_write_bytes(staging / CARD_NAME, model_card_text(model, data))
        _write_scores(staging, metrics, metrics_without_tta, check)
        publish_folder(staging, folder, overwrite=overwrite, what=HUB_FOLDER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, check


def refresh_card(folder: str | Path, recipe: Recipe | str | None = None) -> Path:
    """Write a Hub folder's README.md (the model card) again from the folder's own files; returns its path.

    Uses config.json (the model and its training record), scores.json (held-out scores with and without
    TTA, the stored-weights check, the segmentation's scores) and the figures in the folder; `recipe` (a `Recipe`,
    a name or a path;
    default: the recipe named in config.json) gives the description, notes, deviations and targets. The
    weights, config.json and scores.json are not changed. For cards written by an older renderer, or after
    a recipe's target notes changed.
    """
    import torch

    folder = Path(folder)
    config = read_config(folder / CONFIG_NAME)
    pretrained = dict(config.get("pretrained") or {})
    if recipe is None:
        recorded = str((pretrained.get("training") or {}).get("recipe", ""))
        if not recorded:
            raise ValueError(f"{folder / CONFIG_NAME} names no recipe; pass the recipe the card describes")
        recipe = Path(recorded.split(" (")[0]).stem
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    scores_path = folder / "scores.json"
    if not scores_path.is_file():
        raise FileNotFoundError(f"{scores_path} not found: a card is refreshed from the scores `reproduce` wrote")
    scores = json.loads(scores_path.read_text())
    without_tta, stored = scores.pop("without_tta", None), scores.pop("stored_weights", None)
    segmentation_scores = scores.pop("segmentation", None)
    with torch.device("meta"):  # the card needs the architecture and its parameter count, not weights
        model = build_model(config, str(folder))
    data = {
        **pretrained,
        "held_out_scores": scores,
        "held_out_scores_without_tta": without_tta,
        "stored_weights": (stored or {}).get("summary"),
        "segmentation_scores": segmentation_scores,
        "figures": {alt: name for alt, name in FIGURES.items() if (folder / name).is_file()},
        **_recipe_card_fields(recipe, scores),
    }
    path = folder / CARD_NAME
    atomic_write_bytes(path, model_card_text(model, data))
    return path


def check_stored_weights(
    trained: dict[str, Any], stored: dict[str, Any], dtype: str, tolerance: float = STORED_SCORE_TOLERANCE
) -> dict[str, Any]:
    """Compare held-out scores of the trained model with those of the weights read back from the folder.

    Each score may differ by `tolerance` (absolute), the warping error by ``STORED_SCORE_TOLERANCES``'s
    smaller one. Returns {"dtype", "scores" (stored), "differences", "max_abs_difference", "worst_score"
    (the score closest to or furthest past its tolerance), "tolerance", "equal", "summary"}.
    """
    diffs = {
        k: abs(float(trained[k]) - float(stored[k]))
        for k in SCORE_KEYS
        if trained.get(k) is not None and stored.get(k) is not None
    }
    limits = {k: STORED_SCORE_TOLERANCES.get(k, tolerance) for k in diffs}
    worst = max(diffs, key=lambda k: diffs[k] / limits[k]) if diffs else ""
    largest = diffs[worst] if worst else 0.0
    limit = limits[worst] if worst else tolerance
    equal = all(diffs[k] <= limits[k] for k in diffs)
    summary = (
        f"`model.safetensors` stores the weights in {dtype}; they load as float32. Read back from this folder and "
        f"evaluated again on the same held-out slices, they score "
        + (
            f"the same as the trained weights: over {len(diffs)} scores the closest to its tolerance is {worst}, "
            f"which differs by {largest:.2g} (tolerance {limit:g})."
            if equal
            else f"differently from the trained weights: {worst} differs by {largest:.3g} (tolerance {limit:g})."
        )
    )
    return {
        "dtype": dtype,
        "scores": {k: float(stored[k]) for k in diffs},
        "differences": diffs,
        "max_abs_difference": max(diffs.values(), default=0.0),
        "worst_score": worst,
        "tolerance": tolerance,
        "equal": equal,
        "summary": summary,
    }


def reproduce_isbi(
    variant: Variant = "original",
    *,
    quick: bool = False,
    steps: int | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    compile: bool | None = None,
    callback: ReproduceCallback | None = None,
    weights_dtype: str = "float16",
    max_shard_size: int | None = None,
    resume: str | Path | None = None,
    recipe: str | Path | None = None,
    time_limit: float | None = None,
    overwrite: bool = False,
) -> list[ReproduceResult]:
    """Train, evaluate (held-out slices, TTA per recipe) and write a Hub folder for each variant.

    out: the Hub folder (for "all": the parent of one folder per recipe). Default ``cards/<recipe>/``;
    with `quick`, ``<run folder>/hub/`` so demo weights never land in cards/.
    callback: receives a `ReproduceStage` before each stage and when a recipe is done, and the trainer's
    `TrainProgress` reports (the CLI draws them); nothing is printed.
    weights_dtype: "float16" (default, half the size) or "float32" for model.safetensors; the stored
    weights are read back and evaluated again, and the card says whether they score the same.
    max_shard_size: bytes per weight file; larger checkpoints are sharded with an index (default: one file).
    resume: continue interrupted training from a run folder, or "latest" (the newest ``runs/<recipe>-*``
    with a checkpoint, per recipe); a finished run is evaluated and written again without training.
    recipe: a recipe name or .toml path to run instead of the variant's (e.g. "isbi-small-cpu"); its
    ``[recipe] checkpoint`` names the card folder (default ``cards/<checkpoint>/``).
    time_limit: seconds of training in this session before checkpointing and raising `TimeLimitReached`.
    overwrite: replace an existing Hub folder (checked before training, so no run is wasted); else ValueError.
        A Hub folder that cannot be written (below a file, in a read-only place) is an OSError, also before training.
    Returns one `ReproduceResult` per recipe.
    """
    import torch

    if weights_dtype not in ("float16", "bfloat16", "float32"):
        raise ValueError(f"weights_dtype must be float16, bfloat16 or float32, got {weights_dtype!r}")
    dtype = getattr(torch, weights_dtype)
    names = recipes_for(variant, quick, None if recipe is None else str(recipe))
    if resume is not None and resume != "latest" and len(names) > 1:
        raise ValueError(
            f"--resume {resume} names one run folder, but --variant {variant} trains {len(names)} recipes; "
            "pass --resume latest, or one --variant at a time"
        )
    report = callback if callback is not None and int(os.environ.get("RANK", "0")) == 0 else None  # rank 0 reports
    recipes = [load_recipe(requested) for requested in names]
    if not quick:  # refuse before hours of training, not after
        for r in recipes:
            folder = _hub_folder(r, out, len(names))
            check_output_path(folder, folder=True)  # writable, not a file (OSError otherwise)
            if folder.exists() and not overwrite:
                holds = "already holds a checkpoint" if (folder / "config.json").exists() else "already exists"
                raise ValueError(f"{folder} {holds}; pass --overwrite (overwrite=True) to replace it, or --out another folder")
            if overwrite:
                check_replaceable(folder, what=HUB_FOLDER)  # FileExistsError: not a Hub folder unet_zoo wrote
    results = []
    for run_recipe in recipes:
        if report:
            report(ReproduceStage(run_recipe, "train"))
        resume_from = latest_run_dir(run_recipe.name) if resume == "latest" else resume
        result = train(
            run_recipe,
            steps=steps,
            device=device,
            data_dir=data_dir,
            compile=compile,
            callback=report,
            resume=resume_from,
            time_limit=time_limit,
        )
        if not _is_main():  # under torchrun only rank 0 evaluates and writes
            continue
        score = functools.partial(_score_held_out, result=result, device=next(result.model.parameters()).device)
        if report:
            report(ReproduceStage(run_recipe, "evaluate"))
        start = time.perf_counter()
        metrics = score(result.model, run_recipe.eval.tta)
        eval_seconds = time.perf_counter() - start
        without_tta = score(result.model, False) if run_recipe.eval.tta else None
        folder = result.run_dir / "hub" if quick and out is None else _hub_folder(run_recipe, out, len(names))
        if report:
            report(ReproduceStage(run_recipe, "check_stored"))
        _, check = write_hub_folder(
            result,
            metrics,
            folder,
            hardware_description(next(result.model.parameters()).device),
            dtype=dtype,
            max_shard_size=max_shard_size,
            metrics_without_tta=without_tta,
            rescore=functools.partial(score, tta=run_recipe.eval.tta),
            overwrite=True,  # checked above, before training (a quick run's folder is its own)
        )
        reproduced = ReproduceResult(
            run_recipe,
            result.run_dir,
            folder,
            metrics,
            result.seconds,
            eval_seconds,
            result,
            metrics_without_tta=without_tta,
            stored_check=check,
        )
        if report:
            report(ReproduceStage(run_recipe, "done", reproduced))
        results.append(reproduced)
    return results


def _score_held_out(model: Any, tta: bool, *, result: TrainResult, device: Any) -> dict[str, Any]:
    """ISBI scores of `model` on the run's held-out slices, evaluated as its recipe says."""
    return evaluate_model(
        model,
        result.data.val_images,
        result.data.val_labels,
        tta=tta,
        device=device,
        batch_size=result.recipe.eval.batch_size,
    )


def _hub_folder(recipe: Recipe, out: str | Path | None, count: int) -> Path:
    """Where a recipe's Hub folder goes: `out` (its sub-folder per recipe when several run), else
    ``cards/<checkpoint>/`` of the source checkout (``./cards`` when installed)."""
    if out is not None:
        return Path(out) / recipe.name if count > 1 else Path(out)
    return (source_cards_dir() or CARDS_DIR) / checkpoint_name(recipe)


def _is_main() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


__all__ = [
    "FIGURES",
    "QUICK_RECIPE",
    "check_stored_weights",
    "VARIANT_RECIPES",
    "ReproduceCallback",
    "ReproduceResult",
    "ReproduceStage",
    "card_data",
    "hardware_description",
    "recipes_for",
    "refresh_card",
    "reproduce_isbi",
    "training_info",
    "write_hub_folder",
]
