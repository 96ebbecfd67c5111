"""Publishing a checkpoint: a Hub-ready folder with its weights, config, card, scores and figures.

`write_hub_folder` writes ``model.safetensors`` (optionally float16, sharded), ``config.json``, ``README.md``
(the model card), ``scores.json`` and the figures of the run into a folder that `from_pretrained` loads and
``huggingface-cli upload`` publishes; with `rescore`, it reads the stored weights back, scores them again and
records on the card whether they score the same (`check_stored_weights`). `refresh_card` renders a folder's
card again from its own files. Any model of the zoo can be published so, from any training loop::

    write_hub_folder(model, "my-unet", {"training": {"dataset": "my EM stack"}}, scores=scores)

A run of `unet_zoo.train` describes itself with `unet_zoo.training.run_card.run_card_data`; `unet-zoo reproduce
isbi` and `unet_zoo.finetune` publish their runs here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from unet_zoo.hub.factory import from_pretrained
from unet_zoo.hub.serialization import (
    CARD_NAME,
    CONFIG_NAME,
    build_model,
    model_card_text,
    read_config,
    save_weights_and_config,
)
from unet_zoo.utils.files import atomic_write_bytes, check_replaceable, publish_folder, staging_folder

HUB_FOLDER = "Hub folder"  # what `write_hub_folder` marks its folders as (unet_zoo.utils.files.mark_owned)
SCORES_NAME = "scores.json"
FIGURES = {"held-out predictions": "predictions.png", "training curves": "curves.png"}  # alt text: file of a run folder
CARD_METRICS = ("warping_error", "rand_error", "pixel_error")  # the card's table is "lower is better"
SCORE_KEYS = ("warping_error", "rand_error", "pixel_error", "vrand", "vrand_thinned", "vinfo", "vinfo_thinned", "iou", "dice")
STORED_SCORE_TOLERANCE = 1e-3  # largest score change the cast to the stored dtype may cause
# The warping error is a fraction of pixels some 100x smaller than the other scores (paper: 0.000353);
# 5e-5 is about 13 pixels of one 512x512 slice.
STORED_SCORE_TOLERANCES: dict[str, float] = {"warping_error": 5e-5}


def hardware_description(device: Any) -> str:
    """What the card says the model was trained on: 'NVIDIA H100 80GB HBM3', or '2-core CPU (x86_64), torch 2.9.1'."""
    import torch

    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{os.cpu_count()}-core CPU ({platform.machine()}), torch {torch.__version__.split('+')[0]}"


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


def _write_scores(
    folder: Path, scores: dict[str, Any], without_tta: dict[str, Any] | None, stored_check: dict[str, Any] | None
) -> None:
    kept: dict[str, Any] = {k: v for k, v in scores.items() if isinstance(v, (int, float, str, bool, list))}
    if without_tta is not None:
        kept["without_tta"] = {k: v for k, v in without_tta.items() if isinstance(v, (int, float, bool))}
    if stored_check is not None:
        kept["stored_weights"] = stored_check
    atomic_write_bytes(folder / SCORES_NAME, json.dumps(kept, indent=2).encode())


def write_hub_folder(
    model: nn.Module,
    folder: str | Path,
    card_data: dict[str, Any] | None = None,
    *,
    scores: dict[str, Any] | None = None,
    scores_without_tta: dict[str, Any] | None = None,
    figures_dir: str | Path | None = None,
    dtype: Any = None,
    max_shard_size: int | None = None,
    rescore: Callable[[nn.Module], dict[str, Any]] | None = None,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any] | None]:
    """Build the Hub folder of `model` beside `folder`, then move it into place in one rename.

    card_data: what the card says besides the scores (`unet_zoo.hub.card.CARD_DATA_KEYS`: ``training``,
    ``checkpoint_name``, ``description``, ``notes``, ...; a run of `unet_zoo.train` gives them with
    `unet_zoo.training.run_card.run_card_data`). scores: held-out scores (`unet_zoo.evaluation.evaluate.evaluate_model`'s
    dict): the card's table beside the paper's Table 1 and ``scores.json``; scores_without_tta: a second column.
    figures_dir: a run folder whose `FIGURES` (predictions.png, curves.png) are copied and shown on the card.
    Writes model.safetensors (in `dtype`, e.g. torch.float16; None keeps float32; sharded at `max_shard_size`
    bytes) and config.json; with `rescore` (model -> scores), loads those stored weights back and scores them,
    and records `check_stored_weights`'s verdict; then writes README.md (the card, once, with everything known),
    scores.json and the figures. An existing `folder` is replaced only with `overwrite`, and only when it is a
    Hub folder unet_zoo wrote (`unet_zoo.utils.files.check_replaceable`; else FileExistsError, before any work).
    Returns (folder, the stored-weights check or None).
    """
    import torch

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass --overwrite (overwrite=True) to replace it")
    if overwrite:
        check_replaceable(folder, what=HUB_FOLDER)
    described = dict(card_data or {})
    data: dict[str, Any] = {"checkpoint_name": described.pop("checkpoint_name", None)}
    if scores is not None:
        data["metrics"] = {k: float(scores[k]) for k in CARD_METRICS if scores.get(k) is not None}
    data["training"] = described.pop("training", None)
    data.update(held_out_scores=scores, held_out_scores_without_tta=scores_without_tta, **described)
    staging = staging_folder(folder)
    try:
        save_weights_and_config(model, staging, dtype=dtype, card_data=data, max_shard_size=max_shard_size)
        check = None
        if rescore is not None:
            # Read the stored weights back and score them again: the card must describe what users download.
            stored = from_pretrained(staging, device=next(model.parameters()).device)
            check = check_stored_weights(scores or {}, rescore(stored), str(dtype or torch.float32).removeprefix("torch."))
        figures: dict[str, str] = {}
        if figures_dir is not None:
            figures = {alt: name for alt, name in FIGURES.items() if (Path(figures_dir) / name).is_file()}
            for name in figures.values():
                shutil.copyfile(Path(figures_dir) / name, staging / name)
        data.update(stored_weights=check["summary"] if check else None, figures=figures or None)
        atomic_write_bytes(staging / CARD_NAME, model_card_text(model, data))
        if scores is not None:
            _write_scores(staging, scores, scores_without_tta, check)
        publish_folder(staging, folder, overwrite=overwrite, what=HUB_FOLDER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, check


def read_scores(folder: str | Path) -> dict[str, Any]:
    """The held-out scores `write_hub_folder` stored in `folder`'s scores.json (with ``without_tta``,
    ``stored_weights`` and ``segmentation`` where recorded); FileNotFoundError naming the file when absent."""
    path = Path(folder) / SCORES_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a card is refreshed from the scores `write_hub_folder` wrote")
    return json.loads(path.read_text())


def refresh_card(folder: str | Path, card_fields: dict[str, Any] | None = None) -> Path:
    """Write a Hub folder's README.md (the model card) again from the folder's own files; returns its path.

    Uses config.json (the model and its training record), scores.json (held-out scores with and without TTA,
    the stored-weights check, the segmentation's scores) and the figures in the folder; `card_fields` adds or
    replaces what the card says besides (description, notes, deviations, targets; a recipe's, from
    `unet_zoo.training.run_card.recipe_card_fields`). The weights, config.json and scores.json are not changed.
    For cards written by an older renderer, or after a recipe's target notes changed.
    """
    import torch

    folder = Path(folder)
    config = read_config(folder / CONFIG_NAME)
    scores = read_scores(folder)
    without_tta, stored = scores.pop("without_tta", None), scores.pop("stored_weights", None)
    segmentation_scores = scores.pop("segmentation", None)
    with torch.device("meta"):  # the card needs the architecture and its parameter count, not weights
        model = build_model(config, str(folder))
    data = {
        **dict(config.get("pretrained") or {}),
        "held_out_scores": scores,
        "held_out_scores_without_tta": without_tta,
        "stored_weights": (stored or {}).get("summary"),
        "segmentation_scores": segmentation_scores,
        "figures": {alt: name for alt, name in FIGURES.items() if (folder / name).is_file()},
        **(card_fields or {}),
    }
    path = folder / CARD_NAME
    atomic_write_bytes(path, model_card_text(model, data))
    return path


__all__ = [
    "FIGURES",
    "HUB_FOLDER",
    "SCORES_NAME",
    "check_stored_weights",
    "hardware_description",
    "read_scores",
    "refresh_card",
    "write_hub_folder",
]
