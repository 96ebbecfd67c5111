"""Which training choices thin the predicted membranes, i.e. lower the (unthinned) Rand error?

The challenge's Rand error scores the thresholded probability map as it is: predicted membrane inside a
cell counts as singleton segments, so borders that are too thick cost Rand error even when every cell is
separated (the thinned V_rand, which first thins the borders to 1 px, forgives them). This study trains
the same small U-Net several times with one choice changed at a time and reports, for each, the Rand
error with and without test-time augmentation (TTA), the thinned V_rand, the Rand split (precision) and
merge (recall) scores and the fraction of pixels predicted membrane, beside the ground truth's.

Tuning fold: every model trains on ISBI 2012 slices 0-17 and is scored on slices 18-23. Slices 24-29,
which the published model cards report, are neither trained on nor looked at.

    python studies/rand_error_levers.py --out bench-results/rand_error_levers.json
    python studies/rand_error_levers.py --smoke             # seconds: synthetic data, 3 steps

The threshold is not a lever here: every score is already the best over thresholds 0.0-0.9, as the
challenge computes it. Finished variants are stored in --out as they finish; running the command again
skips them (an interrupted study continues where it stopped).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unet_zoo.data.weight_maps import weight_maps_for_stack
from unet_zoo.evaluation.metrics import isbi_scores, label_components, rand_pair_counts
from unet_zoo.experiments.isbi2012.data import load_isbi
from unet_zoo.inference.tiling import predict_stack
from unet_zoo.training.data import TrainingData, synthetic_cells, weight_map_cache_dir
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import Trainer
from unet_zoo.utils.files import atomic_write_bytes

TRAIN_SLICES = list(range(0, 18))
TUNING_SLICES = list(range(18, 24))


def variants(steps: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Variant name -> recipe overrides; the first is the baseline (the paper's loss), each other changes one thing."""
    return {
        "paper loss (w_c + border term, w0 10, sigma 5)": {},
        "no class-balance term (w_c = 1)": {"loss": {"balance": False}},
        "no border term (w0 = 0)": {"loss": {"w0": 0.0}},
        "plain cross-entropy (w_c = 1, w0 = 0)": {"loss": {"w0": 0.0, "balance": False}},
        "narrower border term (sigma 3 px)": {"loss": {"sigma": 3.0}},
        f"twice the training ({2 * steps} steps)": {"train": {"steps": 2 * steps}},
    }


def border_scores(cell_prob: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Rand split/merge scores (pooled over slices) and membrane fractions at one threshold.

    cell_prob: (S, H, W) P(cell); labels: (S, H, W) 1 = cell, 0 = membrane.
    """
    counts = None
    for prob, label in zip(cell_prob, labels):
        c = rand_pair_counts(label_components(label > 0), label_components(prob > threshold))
        counts = c if counts is None else counts + c
    assert counts is not None
    return {
        "threshold": threshold,
        "rand_precision": counts.precision,
        "rand_recall": counts.recall,
        "membrane_fraction_predicted": float((cell_prob <= threshold).mean()),
        "membrane_fraction_truth": float((labels == 0).mean()),
    }


def score(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray, tta: bool) -> dict[str, float]:
    """ISBI scores (no warping error) of `model` on (S, H, W) slices, plus `border_scores` at the best
    Rand threshold and the inference time per slice."""
    start = time.perf_counter()
    probs = predict_stack(model, images, tta=tta, device="cpu", batch_size=2)[:, 1]
    seconds = (time.perf_counter() - start) / len(images)
    scores = isbi_scores(probs, labels, warping=False)
    keep = ("rand_error", "vrand_thinned", "vinfo_thinned", "pixel_error", "best_threshold_vrand")
    return {
        **{k: float(scores[k]) for k in keep},
        **border_scores(probs, labels, scores["best_threshold_vrand"]),
        "seconds_per_slice": seconds,
    }


def training_data(images: np.ndarray, labels: np.ndarray, recipe, train: list[int], val: list[int]) -> TrainingData:
    """Slices `train` / `val` with the weight maps the recipe's [loss] asks for (cached like the trainer's)."""
    loss = recipe.loss
    weights = weight_maps_for_stack(labels, loss.w0, loss.sigma, cache_dir=weight_map_cache_dir(), balance=loss.balance)
    return TrainingData(
        images[train], labels[train], weights[train], images[val], labels[val], weights[val], list(val), "ISBI 2012"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="isbi-quick", help="base recipe (default: isbi-quick)")
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--steps", type=int, default=600, help="training steps of the baseline")
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (default: UNET_ZOO_DATA_DIR or the cache)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/rand-error-levers"), help="run folders go here")
    parser.add_argument("--out", type=Path, default=Path("bench-results/rand_error_levers.json"))
    parser.add_argument("--variants", default="", help="numbers of the variants to run, e.g. 0,2,3 (0 = baseline; default: all)")
    parser.add_argument("--smoke", action="store_true", help="synthetic data, 3 steps: checks the script in seconds")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    if args.smoke:
        images, labels = synthetic_cells(8, 64, seed=0)
        train, val = list(range(6)), [6, 7]
        args.steps, tile = 3, 32
    else:
        data = load_isbi(args.data_dir)
        images, labels, train, val, tile = data.images, data.labels, TRAIN_SLICES, TUNING_SLICES, None
    base = load_recipe(args.recipe)
    model_args = {**base.model.args, "base_channels": args.base_channels}
    train_cfg = {"steps": args.steps, "eval_every": 0, "checkpoint_every": max(args.steps // 4, 1)}
    base = base.with_overrides(model={"args": model_args}, train=train_cfg, **({"data": {"tile": tile}} if tile else {}))

    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results.setdefault("setup", {})
    results["setup"].update(
        recipe=args.recipe,
        base_channels=args.base_channels,
        steps=args.steps,
        train_slices=train,
        tuning_slices=val,
        threads=torch.get_num_threads(),
        smoke=args.smoke,
    )
    results.setdefault("variants", {})
    chosen = list(variants(args.steps).items())
    if args.variants:
        numbers = [int(n) for n in args.variants.split(",")]
        if not all(0 <= n < len(chosen) for n in numbers):
            parser.error(f"--variants takes numbers 0..{len(chosen) - 1}, got {args.variants}")
        chosen = [chosen[n] for n in numbers]
    print(
        f"{len(chosen)} variants of {args.recipe} ({args.base_channels} base channels, {args.steps} steps), "
        f"trained on slices {train[0]}-{train[-1]}, scored on {val[0]}-{val[-1]}"
    )
    for name, overrides in chosen:
        if name in results["variants"]:
            print(f"{name}: done earlier, kept")
            continue
        recipe = base.with_overrides(recipe={"name": f"{base.name}-levers", "checkpoint": ""}, **overrides)
        start = time.perf_counter()
        run_dir = args.workdir / name.split(" (")[0].replace(" ", "-")
        trainer = Trainer.from_recipe(
            recipe,
            out_dir=run_dir,
            device="cpu",
            final_outputs=False,
            data=training_data(images, labels, recipe, train, val),
            resume=run_dir if (run_dir / "checkpoint.safetensors").is_file() else None,
        )
        model = trainer.fit().model.eval()
        train_seconds = time.perf_counter() - start
        entry = {
            "overrides": overrides,
            "train_seconds": train_seconds,
            "with_tta": score(model, images[val], labels[val], tta=True),
            "without_tta": score(model, images[val], labels[val], tta=False),
        }
        results["variants"][name] = entry
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.out, json.dumps(results, indent=2).encode())
        t, n = entry["with_tta"], entry["without_tta"]
        print(
            f"{name}: Rand error {t['rand_error']:.4f} (TTA) / {n['rand_error']:.4f}, V_rand thinned "
            f"{t['vrand_thinned']:.4f}, membrane {t['membrane_fraction_predicted']:.3f} vs "
            f"{t['membrane_fraction_truth']:.3f} truth, {train_seconds / 60:.1f} min"
        )
    print(to_markdown(results))
    return results


def to_markdown(results: dict[str, Any]) -> str:
    """The study as a Markdown table (one row per variant, with TTA / without)."""
    rows = [
        "| variant | Rand error (TTA / no TTA) | V_rand thinned | Rand split / merge | membrane predicted / truth | train min |",
        "|---|---|---|---|---|---|",
    ]
    for name, e in results["variants"].items():
        t, n = e["with_tta"], e["without_tta"]
        rows.append(
            f"| {name} | {t['rand_error']:.4f} / {n['rand_error']:.4f} | {t['vrand_thinned']:.4f} | "
            f"{t['rand_precision']:.3f} / {t['rand_recall']:.3f} | "
            f"{t['membrane_fraction_predicted']:.3f} / {t['membrane_fraction_truth']:.3f} | {e['train_seconds'] / 60:.1f} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
