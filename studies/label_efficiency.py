"""Label-efficiency study: fine-tuning from a few strokes on ISBI 2012 made to look like another microscope.

Stages (each resumable; outputs under --out, default runs/label-efficiency):

    base      train a base model on ISBI slices 0-17 only (4 nm/px, clean), bf16, checkpointed
    target    the shifted target: slices 18-29 at 8 nm/px (2x downscale), gamma 1.5, Gaussian noise (std 8)
    uncert    the base model's TTA uncertainty on the shifted tuning slices: share of errors in the top 10%
    strokes   strokes drawn from the labels of slices 18 and 19 (random and uncertainty-placed)
    finetune  300-step bf16 fine-tunes (strokes per slice: 5, 10, 20, 50; dense), scored on slices 20-23
    heldout   the chosen runs scored once on slices 24-29 (cells: Rand error, V_info)

    nohup nice -n 10 python3 studies/label_efficiency.py base --time-limit 55 > logs/study.log 2>&1 &

Rerun the same command to continue an interrupted stage. Tuning uses slices 18-23 only; 24-29 are scored once.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

BASE_SLICES = list(range(0, 18))
TUNING_SLICES = list(range(18, 24))
STROKE_SLICES = [18, 19]  # the two slices a user paints
TUNING_SCORED = [20, 21, 22, 23]  # tuning scores: the rest of 18-23
HELD_OUT_SLICES = list(range(24, 30))  # scored once, at the end
SHIFT = {"factor": 2, "gamma": 1.5, "noise_std": 8.0, "seed": 0}  # 8 nm/px, darker mid-tones, noise


def _store(path: Path, update: dict[str, Any]) -> dict[str, Any]:
    from unet_zoo.utils.files import atomic_write_bytes

    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(update)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(results, indent=2).encode())
    return results


def train_base(args: argparse.Namespace) -> Path:
    """The base model: isbi-quick's padded U-Net at --base-channels without batch norm (as the tuning-fold model
    of benchmarks/segmentation_tuning.py), 256-px tiles, trained on slices 0-17; validation tiles from 18-23."""
    from unet_zoo.data.isbi import load_isbi
    from unet_zoo.data.weight_maps import weight_maps_for_stack
    from unet_zoo.training.data import TrainingData, weight_map_cache_dir
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import TimeLimitReached, Trainer

    run = args.out / "base"
    if (run / "summary.json").is_file():
        return run
    torch.manual_seed(0)
    data = load_isbi(args.data_dir)
    recipe = load_recipe("isbi-quick")
    recipe = recipe.with_overrides(
        recipe={"name": "label-efficiency-base", "checkpoint": ""},
        model={"args": {**recipe.model.args, "base_channels": args.base_channels, "norm": "none", "init": "paper"}},
        train={
            "steps": args.base_steps,
            "precision": "bf16",
            "eval_every": 100,
            "eval_tiles": 4,
            "checkpoint_every": 50,
            "overlay_slices": 2,
        },
        eval={"tta": False},
    )
    loss = recipe.loss
    weights = weight_maps_for_stack(data.labels, loss.w0, loss.sigma, cache_dir=weight_map_cache_dir(), balance=loss.balance)
    t, v = BASE_SLICES, TUNING_SLICES
    split = TrainingData(
        data.images[t], data.labels[t], weights[t], data.images[v], data.labels[v], weights[v], list(v), "ISBI 2012 0-17"
    )
    resume = run if (run / "checkpoint.safetensors").is_file() else None
    start = time.perf_counter()
    try:
        Trainer(recipe, out_dir=run, device="cpu", data=split, time_limit=args.time_limit * 60, resume=resume).run()
    except TimeLimitReached as err:
        print(f"base: {err}; rerun to continue", flush=True)
        raise SystemExit(3) from err
    _store(args.out / "results.json", {"base": {"seconds_last_session": time.perf_counter() - start, **vars_of(args)}})
    return run


def vars_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"base_channels": args.base_channels, "base_steps": args.base_steps, "threads": torch.get_num_threads()}


STAGES = {"base": train_base}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--out", type=Path, default=Path("runs/label-efficiency"))
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (default: UNET_ZOO_DATA_DIR or the cache)")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--base-steps", type=int, default=900)
    parser.add_argument("--time-limit", type=float, default=55.0, help="minutes per session of a training stage")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()
