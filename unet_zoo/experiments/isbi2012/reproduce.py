"""`unet-zoo reproduce isbi`: train the paper's recipe, score it on held-out slices, compare with Table 1.

For each variant: train per its recipe (`unet_zoo.training.trainer.train`), predict the held-out ISBI 2012
slices with overlap-tile inference and test-time augmentation, compute the challenge scores
(`unet_zoo.evaluation.evaluate.evaluate_model`), print them beside the paper's Table 1 and write a Hub-ready
folder (`unet_zoo.hub.publish.write_hub_folder`): ``model.safetensors``, ``config.json``, ``README.md`` (a
model card with the measured numbers and every deviation from the paper), ``predictions.png``, ``curves.png``
and ``scores.json``.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from unet_zoo.evaluation.evaluate import evaluate_model
from unet_zoo.hub.publish import HUB_FOLDER, hardware_description, write_hub_folder
from unet_zoo.hub.sources import source_cards_dir
from unet_zoo.models.checkpoint_names import VARIANT_RECIPES
from unet_zoo.training.recipes import Recipe, load_recipe
from unet_zoo.training.run_card import checkpoint_name, run_card_data
from unet_zoo.training.trainer import TrainProgress, TrainResult, latest_run_dir, train
from unet_zoo.utils.files import check_output_path, check_replaceable

Variant = Literal["original", "padded", "small", "all"]
QUICK_RECIPE = "isbi-quick"
CARDS_DIR = Path("cards")  # outside a source checkout (hub.source_cards_dir() is None): ./cards of the working directory


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
        hardware = hardware_description(next(result.model.parameters()).device)
        _, check = write_hub_folder(
            result.model,
            folder,
            run_card_data(result, hardware, metrics),
            scores=metrics,
            scores_without_tta=without_tta,
            figures_dir=result.run_dir,
            dtype=dtype,
            max_shard_size=max_shard_size,
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
    "QUICK_RECIPE",
    "VARIANT_RECIPES",
    "ReproduceCallback",
    "ReproduceResult",
    "ReproduceStage",
    "recipes_for",
    "reproduce_isbi",
]
