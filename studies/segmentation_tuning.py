"""Tune the segmentation defaults on a tuning fold, then score the published checkpoints once on held-out slices.

Tuning fold: a narrow padded U-Net trained on ISBI 2012 slices 0-17 only predicts slices 18-23; the
segmentation parameters (threshold, seed smoothing and distance, minimum size, agglomeration threshold)
are chosen on those predictions. Slices 24-29, which the published checkpoints never trained on, are
segmented once with the chosen defaults.

    python studies/segmentation_tuning.py train      # ~20 min of CPU: the tuning-fold model + its probabilities
    python studies/segmentation_tuning.py tune       # grid over the parameters on slices 18-23 -> JSON + table
    python studies/segmentation_tuning.py heldout    # the three published checkpoints on slices 24-29, once
    python studies/segmentation_tuning.py speed      # seconds per 512x512 slice: segmentation vs network forward
    python studies/segmentation_tuning.py elf        # the same fold with python-elf (watershed + multicut), if installed
    python studies/segmentation_tuning.py tune --smoke   # seconds: synthetic data, checks the script

Results go to --out (default bench-results/segmentation_tuning.json), merged with what is there.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unet_zoo.data.weight_maps import weight_maps_for_stack
from unet_zoo.evaluation.metrics import isbi_scores, rand_pair_counts, segmentation_scores
from unet_zoo.experiments.isbi2012.data import load_isbi
from unet_zoo.inference.tiling import predict_stack, predict_tiled
from unet_zoo.segmentation import SegmentationParams, checkpoint_params, segment_probabilities
from unet_zoo.segmentation.blockwise import segment_blockwise
from unet_zoo.training.data import TrainingData, weight_map_cache_dir
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import TimeLimitReached, Trainer
from unet_zoo.utils.files import atomic_write_bytes

TRAIN_SLICES = list(range(0, 18))
TUNING_SLICES = list(range(18, 24))
HELD_OUT_SLICES = list(range(24, 30))


def train(args: argparse.Namespace) -> None:
    """Train the tuning-fold model on slices 0-17 and store its probabilities of slices 18-23 (with and without TTA)."""
    torch.manual_seed(0)
    data = load_isbi(args.data_dir)
    images, labels = data.images, data.labels
    base = load_recipe("isbi-quick")
    recipe = base.with_overrides(
        recipe={"name": "segmentation-tuning", "checkpoint": ""},
        # the tuning model as it was trained: without the batch norm the quick demo has since gained
        model={"args": {**base.model.args, "base_channels": args.base_channels, "norm": "none", "init": "paper"}},
        train={"steps": args.steps, "eval_every": 0, "checkpoint_every": 100},
    )
    loss = recipe.loss
    weights = weight_maps_for_stack(labels, loss.w0, loss.sigma, cache_dir=weight_map_cache_dir(), balance=loss.balance)
    t, v = TRAIN_SLICES, TUNING_SLICES
    split = TrainingData(images[t], labels[t], weights[t], images[v], labels[v], weights[v], list(v), "ISBI 2012")
    run_dir = args.workdir / "model"
    start = time.perf_counter()
    trainer = Trainer.from_recipe(
        recipe,
        out_dir=run_dir,
        device="cpu",
        final_outputs=False,
        data=split,
        time_limit=args.time_limit * 60,
        resume=run_dir if (run_dir / "checkpoint.safetensors").is_file() else None,
    )
    try:
        model = trainer.fit().model
        stopped = None
    except TimeLimitReached as err:  # keep what was trained; say so in the results
        from unet_zoo.hub.training_state import load_training_state  # only on this path

        model = trainer.model
        model.load_state_dict(load_training_state(run_dir).model)
        stopped = err.step
    model = model.eval()
    seconds = time.perf_counter() - start
    probs = {
        f"tta_{int(tta)}": predict_stack(model, images[v], tta=tta, device="cpu", batch_size=2)[:, 1] for tta in (False, True)
    }
    np.savez_compressed(args.workdir / "tuning_probabilities.npz", **probs)
    store(
        args.out,
        {
            "tuning_model": {
                "recipe": "isbi-quick",
                "base_channels": args.base_channels,
                "steps": args.steps,
                "stopped_at_step": stopped,
                "train_seconds": seconds,
                "train_slices": t,
                "tuning_slices": v,
            }
        },
    )
    print(f"tuning-fold model trained in {seconds / 60:.1f} min; probabilities in {args.workdir}")


# --- tuning -----------------------------------------------------------------------------------------

GRID = {  # stage 1: seeds (with min_size 50, merge 0.5); stage 2: size filter and agglomeration on the best seeds
    "threshold": [0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "sigma": [1.0, 2.0, 3.0],
    "min_distance": [3, 6, 10],
    "min_size": [0, 25, 50, 100, 200],
    "merge_threshold": [None, 0.3, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7],
}


def score_params(probs: np.ndarray, labels: np.ndarray, params: SegmentationParams) -> dict[str, float]:
    """`segmentation_scores` of (S, H, W) P(cell) maps segmented with `params`."""
    segments = np.stack([segment_probabilities(p, params) for p in probs])
    return segmentation_scores(segments, labels)


def tune(args: argparse.Namespace) -> None:
    """Staged grid search on the tuning fold's predictions of slices 18-23; the criterion is the mean Rand error
    with and without TTA (a checkpoint's defaults serve both)."""
    grid = GRID
    if args.smoke:  # synthetic cells, blurred labels as "probabilities", a 2-value grid
        from scipy import ndimage as ndi

        from unet_zoo.training.data import synthetic_cells

        _, labels = synthetic_cells(2, 96, seed=0)
        blurred = np.stack([ndi.gaussian_filter(label.astype(np.float32), 1.0) for label in labels])
        probs = {"tta": blurred, "no_tta": np.clip(blurred + 0.05 * (labels == 0), 0, 1)}
        grid = {k: v[:2] for k, v in GRID.items()}
    else:
        labels = load_isbi(args.data_dir).labels[TUNING_SLICES]
        stored = np.load(args.workdir / "tuning_probabilities.npz")
        probs = {"tta": stored["tta_1"], "no_tta": stored["tta_0"]}
    rows: list[dict[str, Any]] = []

    def run(params: SegmentationParams) -> float:
        row = {"params": params.to_dict()}
        for name, p in probs.items():
            row[name] = score_params(p, labels, params)
        rows.append(row)
        print(f"{params}: Rand error {row['tta']['rand_error']:.4f} (TTA) / {row['no_tta']['rand_error']:.4f}")
        return (row["tta"]["rand_error"] + row["no_tta"]["rand_error"]) / 2  # defaults serve both

    base = SegmentationParams(min_size=50, merge_threshold=0.5)
    seeds = min(
        (
            base.replace(threshold=t, sigma=s, min_distance=d)
            for t, s, d in itertools.product(grid["threshold"], grid["sigma"], grid["min_distance"])
        ),
        key=run,
    )
    candidates = [
        dataclasses.replace(seeds, min_size=m, merge_threshold=g)
        for m, g in itertools.product(grid["min_size"], grid["merge_threshold"])
    ]
    best = min(candidates, key=run)
    best_row = next(r for r in rows if r["params"] == best.to_dict())
    thresholds = {
        "tta": isbi_scores(probs["tta"], labels, warping=False),
        "no_tta": isbi_scores(probs["no_tta"], labels, warping=False),
    }
    store(
        args.out,
        {
            "tuning": {
                "chosen": best.to_dict(),
                "chosen_scores": {k: best_row[k] for k in probs},
                "threshold_only": {
                    k: {m: v[m] for m in ("rand_error", "vinfo", "best_threshold_vrand")} for k, v in thresholds.items()
                },
                "grid": grid,
                "rows": rows,
            }
        },
    )
    print(f"chosen: {best}")
    print(tuning_table(rows, best))


def tuning_table(rows: list[dict[str, Any]], best: SegmentationParams, top: int = 12) -> str:
    """The best `top` settings (mean Rand error with and without TTA) as a Markdown table, the chosen one in bold."""
    lines = [
        "| threshold | sigma | min_distance | min_size | merge_threshold | Rand error TTA / no TTA | V_info TTA "
        "| split / merge (V_rand, TTA) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    unique = {json.dumps(r["params"], sort_keys=True): r for r in rows}.values()
    for r in sorted(unique, key=lambda r: r["tta"]["rand_error"] + r["no_tta"]["rand_error"])[:top]:
        p, t, n = r["params"], r["tta"], r["no_tta"]
        mark = "**" if p == best.to_dict() else ""
        lines.append(
            f"| {p['threshold']} | {p['sigma']} | {p['min_distance']} | {p['min_size']} | {p['merge_threshold']} | "
            f"{mark}{t['rand_error']:.4f}{mark} / {n['rand_error']:.4f} | {t['vinfo']:.4f} | "
            f"{t['vrand_split']:.3f} / {t['vrand_merge']:.3f} |"
        )
    return "\n".join(lines)


# --- the alternative: python-elf (distance-transform watershed + multicut), measured, not a dependency ----


def elf_compare(args: argparse.Namespace) -> None:
    """python-elf's distance-transform watershed and multicut (GAEC) on the same tuning fold, staged grid like `tune`.

    Runs only where python-elf is installed (pip install python-elf); unet_zoo does not depend on it.
    """
    from elf.segmentation import features, multicut, watershed  # optional: only this comparison needs it

    labels = load_isbi(args.data_dir).labels[TUNING_SLICES]
    membrane = 1.0 - np.load(args.workdir / "tuning_probabilities.npz")["tta_1"]
    rows: list[dict[str, Any]] = []

    def segment_elf(m: np.ndarray, threshold: float, sigma: float, min_size: int, beta: float) -> np.ndarray:
        ws, _ = watershed.distance_transform_watershed(m, threshold, sigma, sigma_weights=1.0, min_size=min_size)
        rag = features.compute_rag(ws)
        mean_and_length = features.compute_boundary_mean_and_length(rag, ws, m)
        costs = multicut.compute_edge_costs(mean_and_length[:, 0], edge_sizes=mean_and_length[:, 1], beta=beta)
        nodes = multicut.multicut_gaec(rag, costs)
        return features.project_node_labels_to_pixels(rag, ws, nodes).astype(np.int64)

    def run(setting: tuple[float, float, int, float]) -> float:
        start = time.perf_counter()
        seg = np.stack([segment_elf(m, *setting) for m in membrane])
        seconds = (time.perf_counter() - start) / len(membrane)
        scores = segmentation_scores(seg, labels)
        rows.append(
            {
                "threshold": setting[0],
                "sigma": setting[1],
                "min_size": setting[2],
                "beta": setting[3],
                "seconds_per_slice": seconds,
                **scores,
            }
        )
        print(f"elf {setting}: Rand error {scores['rand_error']:.4f}, V_info {scores['vinfo']:.4f}, {seconds:.2f} s/slice")
        return scores["rand_error"]

    first = min(itertools.product([0.3, 0.5, 0.7], [1.0, 2.0, 3.0], [50], [0.5]), key=run)
    best = min(itertools.product([first[0]], [first[1]], [25, 50, 100], [0.3, 0.4, 0.5, 0.6, 0.7]), key=run)
    store(args.out, {"elf": {"best": dict(zip(("threshold", "sigma", "min_size", "beta"), best)), "rows": rows}})


# --- held-out slices, scored once -------------------------------------------------------------------

CHECKPOINTS = ("isbi-small", "isbi-padded", "isbi-original")


def heldout(args: argparse.Namespace) -> None:
    """The published checkpoints on slices 24-29, with and without TTA: threshold-only and segmentation scores."""
    import unet_zoo

    labels = load_isbi(args.data_dir).labels[HELD_OUT_SLICES]
    images = load_isbi(args.data_dir).images[HELD_OUT_SLICES]
    results: dict[str, Any] = {}
    for name in args.checkpoints.split(","):
        model = unet_zoo.from_pretrained(name)
        params = checkpoint_params(model)
        results[name] = {"params": params.to_dict()}
        for tta in (False, True):
            cache = args.workdir / f"heldout_{name}_tta{int(tta)}.npy"
            if cache.is_file():
                probs = np.load(cache)
            else:
                probs = predict_stack(model, images, tta=tta, device="cpu", batch_size=2)[:, 1]
                np.save(cache, probs)
            if args.predict_only:  # cache the probabilities; scored later, once, with the tuned defaults
                continue
            start = time.perf_counter()
            seg = segmentation_scores(np.stack([segment_probabilities(p, params) for p in probs]), labels)
            seconds = (time.perf_counter() - start) / len(probs)
            thr = isbi_scores(probs, labels, warping=False)
            results[name]["tta" if tta else "no_tta"] = {
                "segmentation": seg,
                "threshold_only": {k: thr[k] for k in ("rand_error", "vrand", "vinfo", "best_threshold_vrand")},
                "segment_seconds_per_slice_incl_scoring": seconds,
            }
            print(
                f"{name} {'TTA' if tta else 'no TTA'}: segmentation Rand error {seg['rand_error']:.4f}, V_info "
                f"{seg['vinfo']:.4f}; threshold-only Rand error {thr['rand_error']:.4f}"
            )
    if not args.predict_only:  # merged per checkpoint with earlier runs of other checkpoints
        earlier = json.loads(args.out.read_text()).get("heldout", {}) if args.out.is_file() else {}
        store(args.out, {"heldout": {**earlier, **results}})


# --- speed ------------------------------------------------------------------------------------------


def speed(args: argparse.Namespace) -> None:
    """Seconds per 512x512 slice: `segment_probabilities` (defaults of isbi-small) vs isbi-small's forward (torch eager)."""
    import unet_zoo

    data = load_isbi(args.data_dir)
    model = unet_zoo.from_pretrained("isbi-small")
    params = checkpoint_params(model)
    image = data.images[24]
    predict_tiled(model, image)  # warm-up
    times = {"forward": [], "segment": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        probs = predict_tiled(model, image)
        times["forward"].append(time.perf_counter() - start)
        start = time.perf_counter()
        segment_probabilities(probs, params)
        times["segment"].append(time.perf_counter() - start)
    result: dict[str, Any] = {k: float(np.median(v)) for k, v in times.items()}
    whole = segment_probabilities(probs, params).astype(np.int64)  # blockwise vs whole on a real slice
    for block, halo in ((256, 64), (128, 64), (128, 32)):
        blocks = segment_blockwise(probs[1], params, block=block, halo=halo).astype(np.int64)
        result[f"blockwise_vrand_block{block}_halo{halo}"] = rand_pair_counts(whole, blocks).fscore
    result.update(threads=torch.get_num_threads(), repeats=args.repeats)
    store(args.out, {"speed": result})
    print(f"per 512x512 slice: segmentation {result['segment']:.3f} s, isbi-small forward {result['forward']:.3f} s")
    print({k: round(v, 5) for k, v in result.items() if k.startswith("blockwise")})


def store(path: Path, update: dict[str, Any]) -> dict[str, Any]:
    """Merge `update` into the JSON results at `path` (written atomically); returns the merged results."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.update(update)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, json.dumps(results, indent=2).encode())
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["train", "tune", "elf", "heldout", "speed"], nargs="?", default="tune")
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (default: UNET_ZOO_DATA_DIR or the cache)")
    parser.add_argument("--base-channels", type=int, default=16, help="width of the tuning-fold model")
    parser.add_argument("--steps", type=int, default=900, help="training steps of the tuning-fold model")
    parser.add_argument("--time-limit", type=float, default=22.0, help="minutes of training at most")
    parser.add_argument("--workdir", type=Path, default=Path("runs/segmentation-tuning"))
    parser.add_argument("--smoke", action="store_true", help="tune: synthetic data and a tiny grid (seconds)")
    parser.add_argument("--checkpoints", default=",".join(CHECKPOINTS), help="heldout: comma-separated names")
    parser.add_argument("--predict-only", action="store_true", help="heldout: only predict and cache, score nothing")
    parser.add_argument("--repeats", type=int, default=5, help="speed: timed repetitions (median reported)")
    parser.add_argument("--out", type=Path, default=Path("bench-results/segmentation_tuning.json"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    {"train": train, "tune": tune, "elf": elf_compare, "heldout": heldout, "speed": speed}[args.stage](args)


if __name__ == "__main__":
    main()
