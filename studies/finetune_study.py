"""Fine-tuning study: ISBI 2012 used as "someone else's data" at another resolution.

1. base: train a model on ISBI slices 0-11 only, at the ISBI pixel size (4 nm/px).
2. the user's data: slices 12-13 (two of 12-17) and the scored slices 24-29, downscaled to 8 nm/px
   (images: skimage.transform.rescale, order 1 with anti-aliasing; labels: a pixel is cell only when all
   four 4-nm pixels it covers are cell, so membranes stay connected).
3. score on slices 24-29 at 8 nm/px: the base model as is, the base model with --pixel-size 8
   (input rescaled to 4 nm/px, probabilities back), and the base model fine-tuned on the two 8-nm slices
   (`unet_zoo.finetune`, its own held-out part: a region of the training slices).

Every stage is resumable (its outputs are kept under --out). The defaults are a small CPU scale (an 8-channel
base on 128-px tiles, 300 steps); docs/finetune.md reports ``--base-channels 32 --base-tile 256 --base-steps 1000``
with the fine-tuning defaults (300 steps), scored on --scored-slices 18-23 first and 24-29 once.

    nohup nice -n 10 python3 studies/finetune_study.py --out runs/finetune-study > logs/finetune_study.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BASE_SLICES = list(range(0, 12))
FINETUNE_SLICES = [12, 13]
BASE_VAL_SLICES = [14, 15]
SCORED_SLICES = list(range(24, 30))
ISBI_NM, USER_NM = 4.0, 8.0


def downscale(images: np.ndarray, labels: np.ndarray, factor: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(S, H, W) uint8 images and 1 = cell labels at `factor` x the pixel size: images order-1 with
    anti-aliasing, labels cell only where every covered pixel is cell (membranes stay connected)."""
    from skimage.transform import rescale

    small = np.stack(
        [np.round(rescale(im.astype(np.float32), 1 / factor, order=1, anti_aliasing=True, preserve_range=True)) for im in images]
    )
    s, h, w = labels.shape
    blocks = labels[:, : h - h % factor, : w - w % factor].reshape(s, h // factor, factor, w // factor, factor)
    return np.clip(small, 0, 255).astype(np.uint8), blocks.min(axis=(2, 4)).astype(np.uint8)


def train_base(
    out: Path, recipe_name: str, steps: int, time_limit: float, data_dir: str | None, base_channels: int, tile: int
) -> Path:
    """Train the base model on slices 0-11 (held-out tiles from 14-15); returns its run folder."""
    from unet_zoo.data.weight_maps import weight_maps_for_stack
    from unet_zoo.experiments.isbi2012.data import load_isbi
    from unet_zoo.training.data import TrainingData, weight_map_cache_dir
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import TimeLimitReached, Trainer

    run = out / "base"
    if (run / "summary.json").is_file():
        return run
    recipe = load_recipe(recipe_name)
    if base_channels != recipe.model.args.get("base_channels") or tile != recipe.data.tile:  # a smaller scale
        recipe = recipe.with_overrides(
            model={"args": {**recipe.model.args, "base_channels": base_channels}},
            data={"tile": tile},
            schedule={"warmup_steps": min(recipe.schedule.warmup_steps, max(steps // 15, 1))},
            train={"checkpoint_every": 50, "eval_every": 100, "eval_tiles": 2, "overlay_slices": 2},
            eval={"tta": False},
        )
    data = load_isbi(data_dir)
    idx = BASE_SLICES + BASE_VAL_SLICES
    weights = weight_maps_for_stack(data.labels[idx], recipe.loss.w0, recipe.loss.sigma, cache_dir=weight_map_cache_dir())
    n = len(BASE_SLICES)
    training = TrainingData(
        data.images[BASE_SLICES],
        data.labels[BASE_SLICES],
        weights[:n],
        data.images[BASE_VAL_SLICES],
        data.labels[BASE_VAL_SLICES],
        weights[n:],
        BASE_VAL_SLICES,
        f"ISBI 2012 slices {BASE_SLICES[0]}-{BASE_SLICES[-1]}",
    )
    resume = run if (run / "checkpoint.safetensors").is_file() else None
    try:
        Trainer.from_recipe(
            recipe, out_dir=run, steps=steps, data=training, time_limit=time_limit, resume=resume, device="cpu"
        ).fit()
    except TimeLimitReached as err:
        print(f"base: {err}", flush=True)
    return run


def write_user_data(out: Path, data_dir: str | None, scored_slices: list[int]) -> dict[str, Path]:
    """The 8-nm TIFFs of the fine-tuning slices and the scored slices, with their resolution tags."""
    import tifffile

    from unet_zoo.experiments.isbi2012.data import load_isbi

    folder = out / "user-data"
    scored = f"{scored_slices[0]}-{scored_slices[-1]}"
    paths = {
        "train-images": folder / "train-images.tif",
        "train-labels": folder / "train-labels.tif",
        "test-images": folder / f"test-images-{scored}.tif",
        "test-labels": folder / f"test-labels-{scored}.tif",
    }
    if all(p.is_file() for p in paths.values()):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    data = load_isbi(data_dir)
    train = downscale(data.images[FINETUNE_SLICES], data.labels[FINETUNE_SLICES])
    test = downscale(data.images[scored_slices], data.labels[scored_slices])
    px_per_cm = 1e7 / USER_NM  # 8 nm/px as TIFF resolution tags
    for key, array in zip(paths, (*train, *test)):
        values = array * 255 if "labels" in key else array
        tifffile.imwrite(paths[key], values.astype(np.uint8), resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER")
    return paths


def score(model, images: np.ndarray, labels: np.ndarray, pixel_size: float | None, model_pixel_size: float) -> dict:
    """`evaluate`'s threshold and segmentation scores of `model` on (S, H, W) images at `pixel_size` nm/px
    (rescaled to the model's pixel size and back; None: as is)."""
    from unet_zoo.evaluation.metrics import isbi_scores, segmentation_scores
    from unet_zoo.inference.rescale import predict_at_pixel_size
    from unet_zoo.segmentation import checkpoint_params, segment_probabilities

    probs = predict_at_pixel_size(model, images, pixel_size, model_pixel_size, device="cpu")
    scores = isbi_scores(probs[:, 1], labels, warping=False)
    cells = np.stack([segment_probabilities(p, checkpoint_params(model)) for p in probs])
    scores["segmentation"] = segmentation_scores(cells, labels)
    return scores


def row(scores: dict) -> dict:
    seg = scores["segmentation"]
    return {
        "vrand_thinned": scores["vrand_thinned"],
        "rand_error": scores["rand_error"],
        "pixel_error": scores["pixel_error"],
        "seg_vrand": seg["vrand"],
        "seg_rand_error": seg["rand_error"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/finetune-study"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--base-recipe", default="isbi-small-cpu")
    parser.add_argument("--base-steps", type=int, default=300)
    parser.add_argument("--base-minutes", type=float, default=6.0)
    parser.add_argument("--finetune-steps", type=int, default=120)
    parser.add_argument("--finetune-minutes", type=float, default=4.0)
    parser.add_argument("--base-channels", type=int, default=8, help="the base network's width (isbi-small-cpu: 32)")
    parser.add_argument("--base-tile", type=int, default=128, help="the base run's tile side (isbi-small-cpu: 256)")
    parser.add_argument("--finetune-lr", type=float, default=None, help="override the fine-tuning recipe's lr")
    parser.add_argument(
        "--scored-slices",
        default="24-29",
        help="ISBI slices scored at 8 nm/px: 24-29 (held out, reported) or 18-23 (for tuning)",
    )
    parser.add_argument("--stage", choices=["base", "all"], default="all")
    args = parser.parse_args()
    started = time.perf_counter()
    first, last = (int(v) for v in args.scored_slices.split("-"))
    scored_slices = list(range(first, last + 1))
    base = train_base(
        args.out, args.base_recipe, args.base_steps, args.base_minutes * 60, args.data_dir, args.base_channels, args.base_tile
    )
    print(f"base model: {base} ({time.perf_counter() - started:.0f} s)", flush=True)
    if args.stage == "base":
        return

    import tifffile

    import unet_zoo
    from unet_zoo.training.recipes import load_recipe

    paths = write_user_data(args.out, args.data_dir, scored_slices)
    test_images = tifffile.imread(paths["test-images"])
    test_labels = (tifffile.imread(paths["test-labels"]) > 0).astype(np.uint8)
    variant = "" if args.finetune_lr is None else f"-lr{args.finetune_lr:g}"
    variant += "" if args.finetune_steps == 300 else f"-{args.finetune_steps}steps"
    tuned_dir = args.out / f"finetuned{variant}"
    recipe = load_recipe("finetune")
    if args.finetune_lr is not None:
        recipe = recipe.with_overrides(optimizer={"lr": args.finetune_lr})
    if not (tuned_dir / "config.json").is_file():
        unet_zoo.finetune(
            str(base),
            paths["train-images"],
            paths["train-labels"],
            tuned_dir,
            foreground="cell",
            recipe=recipe,
            steps=args.finetune_steps,
            time_limit=args.finetune_minutes * 60,
            overwrite=True,
            device="cpu",
        )
    print(f"fine-tuned: {tuned_dir} ({time.perf_counter() - started:.0f} s)", flush=True)
    base_model = unet_zoo.from_pretrained(base)
    tuned = unet_zoo.from_pretrained(tuned_dir)
    results = {
        "base model, input as is (8 nm/px)": row(score(base_model, test_images, test_labels, None, ISBI_NM)),
        "base model, --pixel-size 8": row(score(base_model, test_images, test_labels, USER_NM, ISBI_NM)),
        "fine-tuned on 2 slices, --pixel-size 8": row(score(tuned, test_images, test_labels, USER_NM, ISBI_NM)),
    }
    record = {
        "base_recipe": args.base_recipe,
        "base_steps": args.base_steps,
        "finetune_steps": args.finetune_steps,
        "base_channels": args.base_channels,
        "base_tile": args.base_tile,
        "finetune_lr": args.finetune_lr,
        "scored_slices": scored_slices,
        "seconds": round(time.perf_counter() - started, 1),
        "results": results,
    }
    (args.out / f"study-{args.scored_slices}{variant}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2), flush=True)


if __name__ == "__main__":
    main()
