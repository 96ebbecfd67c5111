"""Label-efficiency study: fine-tuning from a few strokes on ISBI 2012 made to look like another microscope.

Stages (each resumable; outputs under --out, default runs/label-efficiency; UNET_ZOO_DATA_DIR names ISBI 2012):

    base      train a base model on ISBI slices 0-17 only (4 nm/px, clean), bf16, checkpointed
    target    the shifted target: slices 18-29 at 8 nm/px (2x downscale), gamma 1.5, Gaussian noise (std 8)
    uncert    the base model's TTA uncertainty on slices 18-23, shifted and not: share of its errors in the top 10%
    finetune  300-step bf16 fine-tunes on slices 18-19 (`variants`: 5, 10, 20, 50 strokes of each class per slice,
              placed at random or by the uncertainty map (`PLACEMENTS`), three draws each; dense variants with
              three seeds), held out: dense slices 20-23; --only NAME,...
    tune      the base and the finished fine-tunes scored on shifted slices 20-23 (every choice is made here)
    heldout   the base and the finished fine-tunes scored once on slices 24-29 (cells: Rand error, V_info)
    report    the Markdown table of docs/finetune.md
    timing    the default scribble fine-tune of isbi-small on 2 slices of 1024x1024 px, timed (--threads 2)
    all       base, target, uncert, finetune

    nohup nice -n 10 python3 studies/label_efficiency.py all --time-limit 55 > logs/study.log 2>&1 &

Rerun a command to continue: finished parts are skipped, training resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

BASE_SLICES = list(range(0, 18))
TUNING_SLICES = list(range(18, 24))
STROKE_SLICES = [18, 19]  # the two slices a user paints
TUNING_SCORED = [20, 21, 22, 23]  # tuning scores: the rest of 18-23
HELD_OUT_SLICES = list(range(24, 30))  # scored once, at the end
SHIFT = {"factor": 2, "gamma": 1.5, "noise_std": 8.0, "seed": 0}  # 8 nm/px, darker mid-tones, noise


def _store(path: Path, update: dict[str, Any]) -> dict[str, Any]:
    """Merge `update` into the JSON file `path`, under a lock: several stages may run at once."""
    import fcntl

    from unet_zoo.utils.files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.is_file() else {}
        results.update(update)
        atomic_write_bytes(path, json.dumps(results, indent=2).encode())
    return results


def train_base(args: argparse.Namespace) -> Path:
    """The base model: isbi-quick's padded U-Net at --base-channels without batch norm (as the tuning-fold model
    of studies/segmentation_tuning.py), 256-px tiles, trained on slices 0-17; validation tiles from 18-23."""
    from unet_zoo.data.weight_maps import weight_maps_for_stack
    from unet_zoo.experiments.isbi2012.data import load_isbi
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
        Trainer.from_recipe(recipe, out_dir=run, device="cpu", data=split, time_limit=args.time_limit * 60, resume=resume).fit()
    except TimeLimitReached as err:
        print(f"base: {err}; rerun to continue", flush=True)
        raise SystemExit(3) from err
    _store(args.out / "results.json", {"base": {"seconds_last_session": time.perf_counter() - start, **vars_of(args)}})
    return run


def vars_of(args: argparse.Namespace) -> dict[str, Any]:
    return {"base_channels": args.base_channels, "base_steps": args.base_steps, "threads": torch.get_num_threads()}


# --- the target: ISBI 2012 made to look like another microscope --------------------------------------------


def shift_images(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S, H, W) uint8 images and 1 = cell labels -> the shifted target (`SHIFT`): 2x downscale (8 nm/px; labels
    cell only where all four 4-nm pixels are cell), grey values to the power `gamma`, Gaussian noise."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("finetune_study", Path(__file__).with_name("finetune_study.py"))
    assert spec is not None and spec.loader is not None
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    small, cells = study.downscale(images, labels, SHIFT["factor"])
    rng = np.random.default_rng(SHIFT["seed"])
    values = 255.0 * (small / 255.0) ** SHIFT["gamma"] + rng.normal(0, SHIFT["noise_std"], small.shape)
    return np.clip(np.round(values), 0, 255).astype(np.uint8), cells


def target(args: argparse.Namespace) -> dict[str, np.ndarray]:
    """Slices 18-29, shifted; cached in target.npz (arrays keyed by slice number ``images`` / ``cells``)."""
    path = args.out / "target.npz"
    if not path.is_file():
        from unet_zoo.experiments.isbi2012.data import load_isbi

        data = load_isbi(args.data_dir)
        idx = TUNING_SLICES + HELD_OUT_SLICES
        images, cells = shift_images(data.images[idx], data.labels[idx])
        np.savez_compressed(path, images=images, cells=cells, slices=np.array(idx))
    stored = np.load(path)
    return {k: stored[k] for k in stored.files}


def _rows(stored: dict[str, np.ndarray], slices: list[int]) -> list[int]:
    return [int(np.nonzero(stored["slices"] == s)[0][0]) for s in slices]


USER_NM = 4.0 * SHIFT["factor"]


# --- uncertainty: where the base model's errors lie ------------------------------------------------------------


def error_share(probs: np.ndarray, cells: np.ndarray, uncertainty: np.ndarray, top: float = 0.1) -> dict[str, float]:
    """Share of the error pixels (P(cell) >= 0.5 disagreeing with the labels) among the `top` most uncertain pixels
    (exactly that many; ties broken in a fixed random order)."""
    errors = ((probs >= 0.5) != (cells > 0)).ravel()
    values = np.asarray(uncertainty).ravel()
    order = np.lexsort((np.random.default_rng(0).random(values.size), values))[::-1]
    most = order[: int(round(top * values.size))]
    return {
        "error_rate": float(errors.mean()),
        "share_of_errors_in_top": float(errors[most].sum() / max(errors.sum(), 1)),
        "top": top,
        "error_rate_in_top": float(errors[most].mean()),
    }


def _view_spread(model: Any, images: np.ndarray) -> np.ndarray:
    """(S, H, W) std of P(cell) over the 8 TTA views, images at 8 nm/px predicted at 4 nm/px (the alternative map)."""
    from unet_zoo.inference.rescale import rescale_stack, resize_probabilities
    from unet_zoo.inference.tiling import _view_probabilities

    factor = USER_NM / 4.0
    spreads = []
    for image in rescale_stack(images, factor):
        views = np.stack([v[1] for v in _view_probabilities(model, image, None, 2, "cpu", True, "auto", False, None, None, None)])
        spreads.append(views.std(axis=0))
    return resize_probabilities(np.stack(spreads)[:, None], images.shape[-2:])[:, 0]


WIDE_MEMBRANE_RADIUS = 8.0  # px at the model's 4 nm/px: membrane called further than this from any cell is suspect


def wide_membrane_map(probs: np.ndarray, radius: float = WIDE_MEMBRANE_RADIUS) -> np.ndarray:
    """(2, H, W) probabilities (membrane, cell) at the model's pixel size -> (H, W) float32 in [0, 1]: 0 on pixels
    called cell and on pixels called membrane within `radius` px of one called cell, rising to 1 one px further.
    Membranes are thin: a patch called membrane wider than 2 * `radius` px is most often a cell's interior the
    model gets wrong, whether or not its views agree."""
    from scipy import ndimage

    membrane = np.asarray(probs)[1] < 0.5
    if not membrane.any() or membrane.all():
        return np.full(membrane.shape, float(membrane.all()), np.float32)
    distance = ndimage.distance_transform_edt(membrane)
    return np.clip(distance - radius, 0.0, 1.0).astype(np.float32)


def label_next_map(probs: np.ndarray, radius: float = WIDE_MEMBRANE_RADIUS) -> np.ndarray:
    """(C, H, W) TTA-averaged probabilities at the model's pixel size -> (H, W) float32 in [0, 1], the alternative
    map tried here: the mean of `entropy_map` (`predict --uncertainty`'s map: the views are split) and, for two
    classes, `wide_membrane_map` (membrane called where it is too wide to be one)."""
    from unet_zoo.inference.tiling import entropy_map

    probs = np.asarray(probs)
    entropy = entropy_map(probs)
    if probs.shape[0] != 2:
        return entropy
    return ((entropy + wide_membrane_map(probs, radius)) / 2).astype(np.float32)


def shifted_label_next(args: argparse.Namespace, slices: list[int], radius: float = WIDE_MEMBRANE_RADIUS) -> np.ndarray:
    """(S, H, W) `label_next_map` of the base model on shifted `slices` (all among 18-23 or among 24-29), made from
    the uncert stage's TTA means at 4 nm/px and brought back to 8 nm/px, as `predict --pixel-size 8` does."""
    from unet_zoo.inference.rescale import resize_probabilities

    group, tag = (TUNING_SLICES, "tuning") if set(slices) <= set(TUNING_SLICES) else (HELD_OUT_SLICES, "heldout")
    path = args.out / f"label-next-{tag}.npz"
    if not path.is_file():
        uncertainty_stage(args, group, tag)
    means = np.load(path)["shifted_probs"][[group.index(s) for s in slices]]
    at_model = np.stack([label_next_map(q, radius) for q in means])
    return resize_probabilities(at_model[:, None], target(args)["images"].shape[-2:])[:, 0]


RADII = (2.0, 4.0, 6.0, 8.0, 10.0)  # radii of `wide_membrane_map` compared (px at the model's 4 nm/px)


def uncertainty_stage(args: argparse.Namespace, slices: list[int] | None = None, tag: str = "tuning") -> dict[str, Any]:
    """The base model's TTA uncertainty on shifted slices (default 18-23), and on the same slices unshifted (4 nm/px,
    as it was trained): share of its errors in the most uncertain 10%, for the spread of the 8 views (std of
    P(cell)), the entropy of their mean (`predict --uncertainty`'s map) and `label_next_map` (that entropy
    and membrane called too wide; its radius compared on slices 18-23)."""
    import unet_zoo
    from unet_zoo.experiments.isbi2012.data import load_isbi
    from unet_zoo.inference.rescale import rescale_stack, resize_probabilities
    from unet_zoo.inference.tiling import entropy_map, predict_uncertainty

    slices = slices or TUNING_SLICES
    cache = args.out / f"uncertainty-{tag}.npz"
    stored = target(args)
    rows = _rows(stored, slices)
    images, cells = stored["images"][rows], stored["cells"][rows]
    model = unet_zoo.from_pretrained(args.out / "base")
    maps = args.out / f"label-next-{tag}.npz"
    if not maps.is_file():  # TTA means at the model's pixel size: of the shifted slices (as --pixel-size 8) and clean ones
        big = rescale_stack(images, USER_NM / 4.0)
        shifted = np.stack([predict_uncertainty(model, image, batch_size=2)[0] for image in big])
        clean = load_isbi(args.data_dir)
        clean_probs = np.stack([predict_uncertainty(model, clean.images[s], batch_size=2)[0] for s in slices])
        np.savez_compressed(maps, shifted_probs=shifted, clean_probs=clean_probs, clean_cells=clean.labels[slices])
    extra = np.load(maps)
    if not cache.is_file():  # the shifted means brought back to 8 nm/px (as uncertainty_at_pixel_size does)
        probs = resize_probabilities(extra["shifted_probs"], images.shape[-2:])
        np.savez_compressed(cache, probs=probs[:, 1], spread=_view_spread(model, images), slices=np.array(slices))
    data = np.load(cache)
    p = data["probs"]
    clean_probs, clean_cells = extra["clean_probs"], extra["clean_cells"]

    def clean_map(radius: float) -> np.ndarray:
        return np.stack([label_next_map(q, radius) for q in clean_probs])

    result = {
        "slices": slices,
        "tta_spread": error_share(p, cells, data["spread"]),
        "entropy_of_mean": error_share(p, cells, entropy_map(np.stack([1 - p, p]))),
        "label_next": error_share(p, cells, shifted_label_next(args, slices, WIDE_MEMBRANE_RADIUS)),
        "clean_entropy_of_mean": error_share(clean_probs[:, 1], clean_cells, np.stack([entropy_map(q) for q in clean_probs])),
        "clean_label_next": error_share(clean_probs[:, 1], clean_cells, clean_map(WIDE_MEMBRANE_RADIUS)),
        "radius": {  # share of the errors in the top 10% of label_next_map with membranes too wide from r px
            f"{r:g}": {
                "shifted": error_share(p, cells, shifted_label_next(args, slices, r))["share_of_errors_in_top"],
                "clean": error_share(clean_probs[:, 1], clean_cells, clean_map(r))["share_of_errors_in_top"],
            }
            for r in RADII
        },
    }
    _store(args.out / "results.json", {f"uncertainty_{tag}": result})
    print(f"uncertainty on {tag} slices: {json.dumps(result)}", flush=True)
    return result


# --- fine-tunes ------------------------------------------------------------------------------------------------

COUNTS = (5, 10, 20, 50)
SEEDS = (1, 2)  # further training seeds of the dense variants (seed 0: the unsuffixed ones, the recipe's)
DRAWS = tuple(range(2, 17))  # further draws of the stroke placements (draw 1: the unsuffixed variants)
HYBRID_TOP = 5  # hybrid placement: strokes per class and slice from the map's top 10% before spreading
ROUNDS = {20: 10, 50: 20}  # iterative placement: count -> the count of the round before (10: the spread-10 fine-tunes)
TOP_FIRST = 5  # "iterative-top": a first round of this many from the base map's top 10% (the uncertain-5 fine-tunes)
STROKE_LENGTH, STROKE_WIDTH = 10, 3  # px at 8 nm/px
# variant name prefix -> {strokes per class and slice: how many draws}; the placements are explained in PLACEMENTS
STROKE_RUNS: dict[str, dict[int, int]] = {
    "random": {5: 8, 10: 8, 20: 16, 50: 5},
    "uncertain": {5: 5, 10: 3, 20: 1, 50: 1},
    "spread": {5: 3, 10: 16, 20: 16, 50: 5},
    "hybrid": {20: 3, 50: 3},
    "iterative": {20: 16, 50: 5},
    "iterative-top": {20: 5},
    "cell-map": {5: 8, 10: 16, 20: 16, 50: 5},
    "iterative-cell": {20: 16},
    "correct": {20: 8},
    "mixed": {20: 8},
    "grid": {20: 8},
    "grid-random": {20: 8},
}
# the same placements with another share of the loss on the membrane strokes (loss.membrane_share; 0.5: balanced):
# (prefix, strokes per class and slice, share) -> draws; variant names end in -m<share in %>
SHARE_RUNS: dict[tuple[str, int, float], int] = {
    ("random", 20, 0.3): 4, ("random", 20, 0.4): 16, ("cell-map", 20, 0.4): 16, ("random", 10, 0.4): 8, ("random", 50, 0.4): 5,
    ("cell-map", 10, 0.4): 16, ("iterative-cell", 20, 0.4): 16, ("cell-wide", 20, 0.4): 16, ("cell-wide", 10, 0.4): 16,
    ("cell-wide-half", 20, 0.4): 16, ("cell-next", 10, 0.4): 16, ("cell-next", 20, 0.4): 16,
}  # fmt: skip
# the same strokes trained longer (the default loss): (prefix, strokes per class and slice, steps) -> draws;
# names end in -m40-s<steps>
STEP_RUNS: dict[tuple[str, int, int], int] = {("random", 20, 600): 8}
DENSE_SHARES = (0.4,)  # the dense default (ignore_border = 1) with these shares of the loss on membrane pixels
# the same strokes trained with other seeds (train.seed; the stroke runs above use seed 0): how much of the spread
# between draws is the training's own: (prefix, strokes per class and slice, draw) -> seeds; names end in -seed<k>
SEED_RUNS: dict[tuple[str, int, int], tuple[int, ...]] = {("random", 20, 1): (1, 2, 3), ("random", 20, 4): (1, 2, 3)}


def _share_tag(share: float) -> str:
    """The name suffix of a variant with `share` of the loss on membrane pixels: 0.4 -> "-m40"."""
    return f"-m{round(100 * share)}"


def variants() -> dict[str, dict[str, Any]]:
    """name -> how the fine-tune is made. All: 300 steps, bf16, --pixel-size 8; held out: dense slices 20-23
    (tuning) unless ``own_holdout`` (the default: a part of the two slices)."""
    out: dict[str, dict[str, Any]] = {}
    for prefix, runs in STROKE_RUNS.items():
        placement = "uncertainty" if prefix == "uncertain" else prefix
        for n, draws in runs.items():
            out[f"{prefix}-{n}"] = {"labels": "strokes", "count": n, "placement": placement}
            for d in range(2, draws + 1):
                out[f"{prefix}-{n}-draw{d}"] = {"labels": "strokes", "count": n, "placement": placement, "draw": d}
    for (prefix, n, share), draws in SHARE_RUNS.items():
        for d in range(1, draws + 1):
            tag = _share_tag(share)
            spec = {"labels": "strokes", "count": n, "placement": prefix, "loss": {"membrane_share": share}, "tag": tag}
            out[f"{prefix}-{n}{tag}{_suffix(d)}"] = {**spec, **({"draw": d} if d > 1 else {})}
    for (prefix, n, steps), draws in STEP_RUNS.items():
        for d in range(1, draws + 1):
            spec = {"labels": "strokes", "count": n, "placement": prefix, "loss": {"membrane_share": 0.4}, "steps": steps}
            out[f"{prefix}-{n}-m40-s{steps}{_suffix(d)}"] = {**spec, **({"draw": d} if d > 1 else {})}
    for (prefix, n, draw), seeds in SEED_RUNS.items():
        for seed in seeds:
            out[f"{prefix}-{n}{_suffix(draw)}-seed{seed}"] = {
                "labels": "strokes", "count": n, "placement": prefix, "draw": draw, "seed": seed,
            }  # fmt: skip
    paper = {"ignore_border": 0}  # dense labels with the paper's border weights (the fine-tune default before)
    out["dense-default"] = {"labels": "dense", "own_holdout": True, "loss": paper}
    out["dense"] = {"labels": "dense", "loss": paper}
    out["dense-w0-0"] = {"labels": "dense", "loss": {"w0": 0.0, **paper}}
    out["dense-band"] = {"labels": "band"}  # dense, but the 1-px band on each side of every label border unlabelled
    out["dense-ignore1"] = {"labels": "dense"}  # the default now: the same band left out by the fine-tune itself
    out["dense-default-ignore1"] = {"labels": "dense", "own_holdout": True}
    for seed in SEEDS:  # the dense fine-tune and the band against each other, other training seeds
        out[f"dense-seed{seed}"] = {"labels": "dense", "seed": seed, "loss": paper}
        out[f"dense-band-seed{seed}"] = {"labels": "band", "seed": seed}
        out[f"dense-ignore1-seed{seed}"] = {"labels": "dense", "seed": seed}
        out[f"dense-default-seed{seed}"] = {"labels": "dense", "own_holdout": True, "seed": seed, "loss": paper}
        out[f"dense-default-ignore1-seed{seed}"] = {"labels": "dense", "own_holdout": True, "seed": seed}
    for share in DENSE_SHARES:  # the default dense loss with another share on the membrane pixels
        m = {"loss": {"membrane_share": share}}
        for seed in (0, *SEEDS):
            tail = _share_tag(share) + (f"-seed{seed}" if seed else "")
            out[f"dense-ignore1{tail}"] = {"labels": "dense", "seed": seed, **m}
            out[f"dense-default-ignore1{tail}"] = {"labels": "dense", "own_holdout": True, "seed": seed, **m}
    out["random-20-own-holdout"] = {"labels": "strokes", "count": 20, "placement": "random", "own_holdout": True}
    return out


def _suffix(draw: int) -> str:
    return "" if draw == 1 else f"-draw{draw}"


def model_map(args: argparse.Namespace, name: str) -> np.ndarray:
    """(2, H, W) the map `predict --uncertainty --pixel-size 8` writes (entropy of the TTA mean) for the stroke slices,
    from the fine-tune `name` (cached in OUT/maps)."""
    import unet_zoo
    from unet_zoo.inference.rescale import uncertainty_at_pixel_size
    from unet_zoo.inference.tiling import entropy_map

    cache = args.out / "maps" / f"{name}.npy"
    if not cache.is_file():
        stored = target(args)
        model = unet_zoo.from_pretrained(args.out / "ft" / name)
        probs, _ = uncertainty_at_pixel_size(model, stored["images"][_rows(stored, STROKE_SLICES)], USER_NM, 4.0, device="cpu")
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, np.stack([entropy_map(p) for p in probs]))
    return np.load(cache)


def base_label_next_map(args: argparse.Namespace, radius: float = WIDE_MEMBRANE_RADIUS) -> np.ndarray:
    """(2, H, W) `label_next_map` of the base model on the shifted stroke slices (membrane too wide from `radius` px)."""
    return shifted_label_next(args, STROKE_SLICES, radius)


def stroke_labels(args: argparse.Namespace, count: int, placement: str, draw: int = 1, tag: str = "") -> np.ndarray:
    """Scribbles on the two shifted stroke slices (18, 19): `count` membrane + `count` cell strokes per slice;
    `draw` k > 1 draws the seeds again from another random stream (draw 1 keeps the first study's strokes).
    ``iterative``: the strokes of the round before (ROUNDS) and the rest spread by the map of the model fine-tuned
    on them, as a user would paint after looking at the new model's map; ``iterative-top``: the same after a first
    round of TOP_FIRST strokes from the base map's top 10% (20 = 5 + 15, 50 = 20 + 30); ``iterative-cell``: rounds of
    ``cell-map`` strokes (cell strokes by the map, of the base model and then of the model fine-tuned on the round
    before; membrane strokes anywhere). `tag`: the suffix of the round before's variant names (its loss)."""
    from unet_zoo.finetuning.strokes import draw_strokes

    stored = target(args)
    cells = stored["cells"][_rows(stored, STROKE_SLICES)]
    seed = count if draw == 1 else count + 1000 * draw

    def spaced(n: int, rng: int, priority: Any, painted: np.ndarray | None = None) -> np.ndarray:
        """`n` strokes per class, seeds drawn in proportion to `priority`, a stroke length apart."""
        return draw_strokes(
            cells, n, rng=rng, length=STROKE_LENGTH, width=STROKE_WIDTH, priority=priority, top=None,
            spacing=STROKE_LENGTH, painted=painted,
        )  # fmt: skip

    if placement in ("iterative", "iterative-top", "iterative-cell"):
        before = ROUNDS[count]
        earlier, first = ("spread", "spread") if before not in ROUNDS else (placement, placement)
        if placement == "iterative-top" and before not in ROUNDS:  # 20: the top-5 round, then 15
            before, earlier, first = TOP_FIRST, "uncertain", "uncertainty"  # variant name, placement
        if placement == "iterative-cell" and before not in ROUNDS:  # 20: the cell-map-10 round, then 10
            earlier, first = "cell-map", "cell-map"
        painted = stroke_labels(args, before, first, draw)
        new_map = model_map(args, f"{earlier}-{before}{tag}{_suffix(draw)}")
        prio = (None, new_map) if placement == "iterative-cell" else new_map  # iterative-cell: membranes anywhere
        return spaced(count - before, seed + 500, prio, painted)
    data = np.load(args.out / "uncertainty-tuning.npz")
    p = data["probs"][[list(data["slices"]).index(s) for s in STROKE_SLICES]]  # the base model's P(cell)
    from unet_zoo.inference.tiling import entropy_map

    uncertainty = entropy_map(np.stack([1 - p, p]))  # the map `predict --uncertainty` writes
    if placement == "hybrid":  # the first HYBRID_TOP strokes from the map's top 10%, the rest spread by it
        first_round = draw_strokes(
            cells, min(count, HYBRID_TOP), rng=seed, length=STROKE_LENGTH, width=STROKE_WIDTH, priority=uncertainty
        )
        rest = stroke_labels(args, count - HYBRID_TOP, "spread", draw) if count > HYBRID_TOP else np.zeros_like(first_round)
        return np.where(first_round > 0, first_round, rest).astype(np.uint8)
    if placement == "correct":  # membrane strokes where P(cell) is high, cell strokes where it is low
        return spaced(count, seed, (p, 1 - p))
    if placement == "cell-wide":  # as cell-next, membrane called too wide from 2 px (not 8) beyond a cell
        return spaced(count, seed, (None, base_label_next_map(args, 2.0)))
    if placement == "cell-next":  # cell strokes weighted by label_next_map (wide membranes from 8 px); membranes anywhere
        return spaced(count, seed, (None, base_label_next_map(args)))
    if placement == "cell-wide-half":  # half of the cell strokes as cell-wide, the rest (and all membranes) anywhere
        half = spaced(count // 2, seed, (None, base_label_next_map(args, 2.0)))
        return spaced(count - count // 2, seed + 500, None, half)
    if placement == "cell-map":  # cell strokes map-weighted, membrane strokes anywhere
        return spaced(count, seed, (None, uncertainty))
    if placement == "mixed":  # half of the strokes at random (coverage), the other half map-weighted beside them
        half = draw_strokes(cells, count // 2, rng=seed, length=STROKE_LENGTH, width=STROKE_WIDTH)
        return spaced(count - count // 2, seed + 500, uncertainty, half)
    if placement in ("grid", "grid-random"):  # one seed per part of the slice, by the map within it (grid) or not
        prio = uncertainty if placement == "grid" else None
        return draw_strokes(
            cells, count, rng=seed, length=STROKE_LENGTH, width=STROKE_WIDTH, priority=prio, top=None, stratify=True
        )
    if placement == "spread":  # seeds drawn in proportion to the uncertainty, strokes a stroke length apart
        return spaced(count, seed, uncertainty)
    prio = uncertainty if placement == "uncertainty" else None  # the map's top 10%, or anywhere ("random")
    return draw_strokes(cells, count, rng=seed, length=STROKE_LENGTH, width=STROKE_WIDTH, priority=prio)


def band_labels(cells: np.ndarray) -> np.ndarray:
    """Dense labels as scribbles without the pixels next to a membrane/cell border (`border_band_mask`, 1 px):
    membrane (1) where the 3x3 neighbourhood is all membrane or on the membranes' centre line, cell (2) where it is
    all cell, else 0. (`loss.ignore_border = 1` does the same inside the fine-tune.)"""
    from unet_zoo.training.data import border_band_mask

    kept = border_band_mask(cells, 1)
    return np.where(kept, np.where(cells > 0, 2, 1), 0).astype(np.uint8)


def finetune_stage(args: argparse.Namespace) -> None:
    """Every variant (or --only), 300 steps bf16 each; resumable per variant."""
    import unet_zoo
    from unet_zoo.training.recipes import load_recipe
    from unet_zoo.training.trainer import TimeLimitReached

    stored = target(args)
    images = stored["images"][_rows(stored, STROKE_SLICES)]
    val_rows = _rows(stored, TUNING_SCORED)
    wanted = args.only.split(",") if args.only else list(variants())
    started = time.perf_counter()
    for name in wanted:
        spec = variants()[name]
        folder = args.out / "ft" / name
        if (folder / "finetune.json").is_file():
            continue
        if spec["labels"] == "strokes":
            labels = stroke_labels(args, spec["count"], spec["placement"], spec.get("draw", 1), spec.get("tag", ""))
            form = "scribbles"
        elif spec["labels"] == "band":
            labels = band_labels(stored["cells"][_rows(stored, STROKE_SLICES)])
            form = "scribbles"
        else:
            labels = stored["cells"][_rows(stored, STROKE_SLICES)]
            form = "binary"
        loss = {"membrane_share": 0.5, **spec.get("loss", {})}  # the study's runs weigh both classes alike unless said
        recipe = load_recipe("finetune").with_overrides(train={"precision": "bf16", "seed": spec.get("seed", 0)}, loss=loss)
        run_dir = args.out / "ft" / f"{name}-run"
        val = (
            {} if spec.get("own_holdout") else {"val_images": stored["images"][val_rows], "val_labels": stored["cells"][val_rows]}
        )
        begin = time.perf_counter()
        try:
            result = unet_zoo.finetune(
                str(args.out / "base"),
                images,
                labels,
                folder,
                label_form=form,  # type: ignore[arg-type]
                pixel_size=USER_NM,
                recipe=recipe,
                device="cpu",
                overwrite=True,
                run_dir=run_dir,
                resume=run_dir if (run_dir / "checkpoint.safetensors").is_file() else None,
                time_limit=args.time_limit * 60,
                steps=spec.get("steps", args.finetune_steps),
                **val,
            )
        except TimeLimitReached as err:
            print(f"{name}: {err}; rerun to continue", flush=True)
            raise SystemExit(3) from err
        record = {
            "spec": spec,
            "labelled_share": float((labels > 0).mean()) if form == "scribbles" else 1.0,
            "labelled_pixels": int((labels > 0).sum()) if form == "scribbles" else int(labels.size),
            "membrane_share_of_labelled": float((labels == 1).sum() / max((labels > 0).sum(), 1))
            if form == "scribbles"
            else float((labels == 0).mean()),
            "held_out": result.held_out,
            "before": {k: v for k, v in result.before.items() if isinstance(v, (int, float))},
            "after": {k: v for k, v in result.after.items() if isinstance(v, (int, float))},
            "before_cells": {k: result.before.get("segmentation", {}).get(k) for k in ("rand_error", "vinfo")},
            "after_cells": {k: result.after.get("segmentation", {}).get(k) for k in ("rand_error", "vinfo")},
            "seconds": round(time.perf_counter() - begin, 1),
            "train_seconds": round(result.train_result.seconds, 1),
        }
        _store(args.out / "results.json", {f"finetune_{name}": record})
        print(f"{name}: {json.dumps(record)} ({time.perf_counter() - started:.0f} s in all)", flush=True)


# --- held-out slices 24-29, scored once --------------------------------------------------------------------


def score_cells(model: Any, images: np.ndarray, cells: np.ndarray) -> dict[str, float]:
    """Thresholded and segmented scores of `model` on shifted (S, H, W) images predicted with --pixel-size 8."""
    from unet_zoo.evaluation.metrics import isbi_scores, segmentation_scores
    from unet_zoo.inference.rescale import predict_at_pixel_size
    from unet_zoo.segmentation import checkpoint_params, segment_probabilities

    probs = predict_at_pixel_size(model, images, USER_NM, 4.0, device="cpu", batch_size=2)
    thr = isbi_scores(probs[:, 1], cells, warping=False)
    seg = segmentation_scores(np.stack([segment_probabilities(p, checkpoint_params(model)) for p in probs]), cells)
    return {
        "cells_rand_error": seg["rand_error"],
        "cells_vinfo": seg["vinfo"],
        "threshold_rand_error": thr["rand_error"],
        "pixel_error": thr["pixel_error"],
    }


def tune_stage(args: argparse.Namespace) -> None:
    """The base and every finished fine-tune on shifted tuning slices 20-23, scored like `heldout_stage` (the basis of
    every choice; slices 18-19 carry the strokes)."""
    import unet_zoo

    stored = target(args)
    rows = _rows(stored, TUNING_SCORED)
    images, cells = stored["images"][rows], stored["cells"][rows]
    results = json.loads((args.out / "results.json").read_text()) if (args.out / "results.json").is_file() else {}
    scores = dict(results.get("tuning_scores", {}))
    names = ["base"] + [n for n in variants() if (args.out / "ft" / n / "config.json").is_file()]
    for name in names:
        if name in scores:
            continue
        model = unet_zoo.from_pretrained(args.out / ("base" if name == "base" else f"ft/{name}"))
        scores[name] = score_cells(model, images, cells)
        _store(args.out / "results.json", {"tuning_scores": scores})
        print(f"tuning {name}: {json.dumps(scores[name])}", flush=True)


def heldout_stage(args: argparse.Namespace) -> None:
    """The base and every finished fine-tune on shifted slices 24-29 (each scored once), and the uncertainty share."""
    import unet_zoo

    stored = target(args)
    rows = _rows(stored, HELD_OUT_SLICES)
    images, cells = stored["images"][rows], stored["cells"][rows]
    results = json.loads((args.out / "results.json").read_text()) if (args.out / "results.json").is_file() else {}
    scores = dict(results.get("heldout", {}))
    names = ["base"] + [n for n in variants() if (args.out / "ft" / n / "config.json").is_file()]
    for name in names:
        if name in scores:
            continue
        model = unet_zoo.from_pretrained(args.out / ("base" if name == "base" else f"ft/{name}"))
        scores[name] = score_cells(model, images, cells)
        _store(args.out / "results.json", {"heldout": scores})
        print(f"held-out {name}: {json.dumps(scores[name])}", flush=True)
    if "label_next" not in results.get("uncertainty_heldout", {}):
        uncertainty_stage(args, HELD_OUT_SLICES, "heldout")


def timing_stage(args: argparse.Namespace) -> None:
    """Wall time of the default scribble fine-tune (recipes/finetune.toml as is) of --timing-model on 2 slices of
    1024x1024 px: mosaics of 4 ISBI slices each (0-3, 4-7), 20 membrane + 20 cell strokes per slice."""
    import unet_zoo
    from unet_zoo.experiments.isbi2012.data import load_isbi
    from unet_zoo.finetuning.strokes import draw_strokes
    from unet_zoo.hub.publish import hardware_description

    data = load_isbi(args.data_dir)

    def mosaic(stack: np.ndarray) -> np.ndarray:
        return np.block([[stack[0], stack[1]], [stack[2], stack[3]]])

    images = np.stack([mosaic(data.images[i : i + 4]) for i in (0, 4)])
    cells = np.stack([mosaic(data.labels[i : i + 4]) for i in (0, 4)])
    strokes = draw_strokes(cells, 20, rng=0)
    start = time.perf_counter()
    result = unet_zoo.finetune(
        args.timing_model, images, strokes, args.out / "timing-model", overwrite=True, run_dir=args.out / "timing-run"
    )
    seconds = time.perf_counter() - start
    record = {
        "seconds": round(seconds, 1),
        "train_seconds": round(result.train_result.seconds, 1),
        "model": args.timing_model,
        "labelled_share": float((strokes > 0).mean()),
        "precision": result.train_result.precision,
        "hardware": hardware_description(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "load_average_after": list(__import__("os").getloadavg()),
    }
    _store(args.out / "results.json", {"timing_1024": record})
    print(f"timing: {json.dumps(record)}", flush=True)


ROW_NAMES = {
    "base": "none (the base model)",
    "random-5": "5 + 5 strokes per slice, random",
    "uncertain-5": "5 + 5 strokes per slice, top 10% of the map",
    "spread-5": "5 + 5 strokes per slice, map-weighted, 10 px apart",
    "random-10": "10 + 10 strokes per slice, random",
    "uncertain-10": "10 + 10 strokes per slice, top 10% of the map",
    "spread-10": "10 + 10 strokes per slice, map-weighted, 10 px apart",
    "random-20": "20 + 20 strokes per slice, random",
    "uncertain-20": "20 + 20 strokes per slice, top 10% of the map",
    "spread-20": "20 + 20 strokes per slice, map-weighted, 10 px apart",
    "iterative-20": "20 + 20 strokes per slice, in rounds (10 + 10) on the fine-tuned models' maps",
    "random-50": "50 + 50 strokes per slice, random",
    "uncertain-50": "50 + 50 strokes per slice, top 10% of the map",
    "spread-50": "50 + 50 strokes per slice, map-weighted, 10 px apart",
    "iterative-50": "50 + 50 strokes per slice, in rounds (10 + 10 + 30) on the fine-tuned models' maps",
    "dense-default": "dense, the default fine-tune before (held out: the right half of both slices)",
    "dense": "dense, all of both slices",
    "dense-w0-0": "dense, all of both slices, no border weights (w0 = 0)",
    "dense-band": "dense without the 1-px band beside every border (as strokes)",
    "dense-ignore1": "dense, the fine-tune leaving out that band itself (ignore_border = 1)",
    "dense-default-ignore1": "dense, that band left out, both classes alike (held out: the right half of both slices)",
    "random-20-own-holdout": "20 + 20 strokes per slice, random, held out: the right half",
}


def report_stage(args: argparse.Namespace) -> None:
    """The Markdown table of docs/finetune.md from results.json: held-out (24-29) and tuning (20-23) scores."""
    results = json.loads((args.out / "results.json").read_text())
    held, tuning = results.get("heldout", {}), results.get("tuning_scores", {})
    lines = [
        "| labels on slices 18-19 (8 nm/px) | labelled | cells: Rand error | cells: V_info | thresholded Rand error "
        "| pixel error | tuning 20-23: cells' Rand error |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, text in ROW_NAMES.items():
        if name not in held and name not in tuning:
            continue
        record = results.get(f"finetune_{name}", {})
        share = record.get("labelled_share")
        h = held.get(name)
        cells = (
            f"{h['cells_rand_error']:.3f} | {h['cells_vinfo']:.3f} | {h['threshold_rand_error']:.3f} | {h['pixel_error']:.3f}"
            if h
            else "not scored | | |"
        )
        tune = f"{tuning[name]['cells_rand_error']:.3f}" if name in tuning else "-"
        lines.append(f"| {text} | {'-' if share is None else f'{100 * share:.1f}%'} | {cells} | {tune} |")
    print("\n".join(lines))
    print()
    print("\n".join(repeat_table(held, tuning)))


def _runs(scores: dict[str, Any], names: list[str]) -> list[float]:
    return [scores[n]["cells_rand_error"] for n in names if n in scores]


PLACEMENTS = {
    "random": "random",
    "uncertain": "top 10% of the map",
    "spread": "map-weighted, 10 px apart",
    "hybrid": "5 from the map's top, the rest map-weighted",
    "iterative": "in rounds, each map-weighted on the map of the model fine-tuned on the round before",
    "iterative-top": "in rounds, the first 5 from the base map's top, then map-weighted on the new maps",
    "correct": "where the base model's prediction contradicts the stroke's class, 10 px apart",
    "cell-map": "cell strokes map-weighted, membrane strokes at random, 10 px apart",
    "cell-wide": "cell strokes weighted by entropy and wide membranes (2 px), membrane strokes at random, 10 px apart",
    "cell-next": "cell strokes weighted by entropy and wide membranes (8 px), membrane strokes at random, 10 px apart",
    "cell-wide-half": "half the cell strokes weighted by entropy and wide membranes (2 px), the rest and membranes at random",
    "iterative-cell": "in rounds (10 + 10), cell strokes map-weighted on the map of the model before, membrane strokes at random",
    "mixed": "half at random, half map-weighted 10 px apart",
    "grid": "one in each part of a grid over the slice, map-weighted within the part",
    "grid-random": "one in each part of a grid over the slice, at random within the part",
}


def repeat_table(held: dict[str, Any], tuning: dict[str, Any]) -> list[str]:
    """Cells' Rand error over repeated runs: each stroke count and placement over its draws (1: the unsuffixed
    variant), the dense fine-tune and the band over their training seeds; mean and every run, held out and tuning."""
    groups: dict[str, list[str]] = {}
    for n in COUNTS:
        for placement, text in PLACEMENTS.items():
            groups[f"{n} + {n} strokes per slice, {text}"] = [f"{placement}-{n}"] + [f"{placement}-{n}-draw{d}" for d in DRAWS]
    for (prefix, n, share), draws in SHARE_RUNS.items():
        text = f"{n} + {n} strokes per slice, {PLACEMENTS[prefix]}, {share:.0%} of the loss on membrane strokes"
        groups[text] = [f"{prefix}-{n}{_share_tag(share)}{_suffix(d)}" for d in range(1, draws + 1)]
    for (prefix, n, steps), draws in STEP_RUNS.items():
        text = f"{n} + {n} strokes per slice, {PLACEMENTS[prefix]}, 40% of the loss on membrane strokes, {steps} steps"
        groups[text] = [f"{prefix}-{n}-m40-s{steps}{_suffix(d)}" for d in range(1, draws + 1)]
    for (prefix, n, draw), seeds in SEED_RUNS.items():
        text = f"{n} + {n} strokes per slice, {PLACEMENTS[prefix]}, draw {draw}, training seeds 0, {', '.join(map(str, seeds))}"
        groups[text] = [f"{prefix}-{n}{_suffix(draw)}"] + [f"{prefix}-{n}{_suffix(draw)}-seed{k}" for k in seeds]
    groups["dense, all of both slices"] = ["dense"] + [f"dense-seed{s}" for s in SEEDS]
    groups["dense without the 1-px band beside every border"] = ["dense-band"] + [f"dense-band-seed{s}" for s in SEEDS]
    groups["dense, the fine-tune leaving out the band (ignore_border = 1)"] = ["dense-ignore1"] + [
        f"dense-ignore1-seed{s}" for s in SEEDS
    ]
    groups["dense, the default fine-tune before (held out: the right half)"] = ["dense-default"] + [
        f"dense-default-seed{s}" for s in SEEDS
    ]
    groups["dense, the band left out, both classes alike (held out: the right half)"] = ["dense-default-ignore1"] + [
        f"dense-default-ignore1-seed{s}" for s in SEEDS
    ]
    for share in DENSE_SHARES:
        tail = _share_tag(share)
        for name, text in (("dense-ignore1", "the band left out"), ("dense-default-ignore1", "the default now (right half out)")):
            groups[f"dense, {text}, {share:.0%} of the loss on membrane pixels"] = [f"{name}{tail}"] + [
                f"{name}{tail}-seed{k}" for k in SEEDS
            ]
    lines = [
        "| labels on slices 18-19 | runs | cells' Rand error, 24-29: mean | each run | tuning 20-23: mean | each run |",
        "|---|---:|---:|---|---:|---|",
    ]
    for text, names in groups.items():
        h, t = _runs(held, names), _runs(tuning, names)
        if not h and not t:
            continue
        lines.append(
            f"| {text} | {max(len(h), len(t))} | {np.mean(h):.3f} | {', '.join(f'{v:.3f}' for v in h)} | "
            f"{np.mean(t):.3f} | {', '.join(f'{v:.3f}' for v in t)} |"
        )
    return lines


def all_stages(args: argparse.Namespace) -> None:
    train_base(args)
    target(args)
    uncertainty_stage(args)
    finetune_stage(args)


STAGES = {
    "base": train_base,
    "target": target,
    "uncert": uncertainty_stage,
    "finetune": finetune_stage,
    "tune": tune_stage,
    "heldout": heldout_stage,
    "timing": timing_stage,
    "report": report_stage,
    "all": all_stages,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=list(STAGES))
    parser.add_argument("--out", type=Path, default=Path("runs/label-efficiency"))
    parser.add_argument("--data-dir", default=None, help="ISBI 2012 folder (default: UNET_ZOO_DATA_DIR or the cache)")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--base-steps", type=int, default=900)
    parser.add_argument("--time-limit", type=float, default=55.0, help="minutes per session of a training stage")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--finetune-steps", type=int, default=300)
    parser.add_argument("--timing-model", default="isbi-small", help="timing: the starting checkpoint")
    parser.add_argument("--only", default="", help="finetune: comma-separated variant names (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    STAGES[args.stage](args)


if __name__ == "__main__":
    main()
