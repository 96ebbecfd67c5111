"""What a training run says on its model card: the recipe, the data, the split, the optimiser, the time, the
deviations from the paper and the recipe's targets, checked on the held-out scores.

`run_card_data` gives the ``card_data`` of `unet_zoo.hub.publish.write_hub_folder` for a `TrainResult`;
`refresh_run_card` renders a published run's card again with its recipe's current notes and targets::

    scores = evaluate_model(result.model, result.data.val_images, result.data.val_labels)
    write_hub_folder(result.model, "my-unet", run_card_data(result, hardware), scores=scores, figures_dir=result.run_dir)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from unet_zoo.data.sources import source_card_fields
from unet_zoo.hub.publish import read_scores, refresh_card
from unet_zoo.hub.serialization import CONFIG_NAME, read_config
from unet_zoo.models.checkpoint_names import VARIANT_RECIPES
from unet_zoo.models.registry import PRETRAINED
from unet_zoo.paper import target_results
from unet_zoo.training.recipes import Recipe, load_recipe
from unet_zoo.training.trainer import TrainResult


def class_weights(recipe: Recipe) -> str:
    """How a masked loss weighs the two classes: "class-balanced", or the share carried by membrane pixels."""
    share = recipe.loss.membrane_share
    return "class-balanced" if share == 0.5 else f"class-weighted ({share:.0%} of the loss on membrane pixels)"


def checkpoint_name(recipe: Recipe) -> str:
    """The published name of what `recipe` trains: ``[recipe] checkpoint`` (e.g. isbi-small for isbi-small-cpu),
    else the recipe's name."""
    return recipe.recipe.checkpoint or recipe.name


def training_info(recipe: Recipe, result: TrainResult, hardware: str) -> dict[str, Any]:
    """The card's training section: recipe, data, split, optimiser, loss, time (`hardware`: what it ran on,
    `unet_zoo.hub.publish.hardware_description`)."""
    o, t = recipe.optimizer, recipe.train
    optimiser = f"SGD, momentum {o.momentum}" if o.name == "sgd" else f"{o.name.capitalize()}, betas {tuple(o.betas)}"
    if o.grad_clip:
        optimiser += f", gradient-norm clip {o.grad_clip}"
    schedule = recipe.schedule.kind + (
        f" with {recipe.schedule.warmup_steps} warm-up steps" if recipe.schedule.warmup_steps else ""
    )
    first, last = result.data.val_slices[0], result.data.val_slices[-1]
    source = result.data.source.split(" (")[0]  # "ISBI 2012 (/data/isbi2012)": the name without the folder
    return {
        "recipe": f"recipes/{recipe.name}.toml" + (f" ({recipe.recipe.description})" if recipe.recipe.description else ""),
        "dataset": source + f", {len(result.data.train_images)} training slices",
        "held_out": f"slices {first}-{last} of the {source} training stack (not trained on)",
        "held_out_split": f"slices {first}-{last}",
        "steps": result.step,
        "tiles_seen": result.step * t.batch_size * result.world_size,
        "batch_size": t.batch_size,
        "tile": f"{recipe.data.tile} px",
        **({"pixel_size_nm": float(result.data.pixel_size)} if result.data.pixel_size else {}),
        "optimizer": optimiser,
        "learning_rate": f"{o.lr:g} ({schedule})",
        "augmentation": ", ".join(f"{k}={v}" for k, v in recipe.as_dict()["augment"].items()) or "defaults",
        "loss": (
            f"pixel-wise softmax + {class_weights(recipe)} cross-entropy, {recipe.loss.ignore_border} px beside every "
            "label border left out"
            if recipe.loss.ignore_border
            else f"pixel-wise softmax + weighted cross-entropy (w0={recipe.loss.w0:g}, sigma={recipe.loss.sigma:g} px)"
        ),
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


def recipe_card_fields(recipe: Recipe, scores: dict[str, Any]) -> dict[str, Any]:
    """What a card says from its recipe: description, notes, deviations, the targets checked on `scores`, and what
    its data source adds (`unet_zoo.data.sources.source_card_fields`: ISBI 2012's, the paper's Table 1)."""
    info = recipe.recipe
    return {
        **source_card_fields(recipe.data.source),
        "description": info.description or None,
        "notes": info.notes or None,
        "deviations": list(info.deviations) or None,
        "targets": target_results(info.targets, scores) or None,
        "target_notes": info.target_notes or None,
    }


def run_card_data(
    result: TrainResult, hardware: str, scores: dict[str, Any] | None = None, updates: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``card_data`` of `unet_zoo.hub.publish.write_hub_folder` for a finished run: its published name (only
    names that are or will be published go into the card's usage snippet), the training section and the recipe's
    fields, its targets checked on the held-out `scores`. updates: lines of the training section to add or
    replace (e.g. for data other than ISBI 2012)."""
    recipe = result.recipe
    name = checkpoint_name(recipe)
    training = training_info(recipe, result, hardware)
    training["deviations"] = recipe.recipe.deviations  # kept in config.json; the card lists them in their own section
    training.update(updates or {})
    return {
        "checkpoint_name": name if name in VARIANT_RECIPES.values() or name in PRETRAINED else None,
        "training": training,
        **recipe_card_fields(recipe, scores or {}),
    }


def refresh_run_card(folder: str | Path, recipe: Recipe | str | None = None) -> Path:
    """`unet_zoo.hub.publish.refresh_card` with the fields of `recipe` (a `Recipe`, a name or a path; default: the
    recipe named in the folder's config.json): its description, notes, deviations and targets, checked again on
    the folder's scores.json. Returns the README.md path."""
    folder = Path(folder)
    if recipe is None:
        pretrained = read_config(folder / CONFIG_NAME).get("pretrained") or {}
        recorded = str((pretrained.get("training") or {}).get("recipe", ""))
        if not recorded:
            raise ValueError(f"{folder / CONFIG_NAME} names no recipe; pass the recipe the card describes")
        recipe = Path(recorded.split(" (")[0]).stem
    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    scores = read_scores(folder)
    return refresh_card(folder, recipe_card_fields(recipe, scores))


__all__ = ["checkpoint_name", "recipe_card_fields", "refresh_run_card", "run_card_data", "training_info"]
