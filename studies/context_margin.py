"""How much mirrored context a same-size model needs around each tile: held-out scores against the margin.

    UNET_ZOO_DATA_DIR=path/to/isbi2012 python3 studies/context_margin.py --json context-margin.json
    python3 studies/context_margin.py --checkpoints isbi-small --margins 0,32,86 --slices 24-25   # a quick look

A 512x512 slice is predicted as one tile holding the slice and its mirrored context on each side
(`unet_zoo.inference.tiling.choose_tile`, `tile_margin`); the network's time grows with the square of that
tile. This study predicts the held-out ISBI 2012 slices (24-29) with each checkpoint for each margin of
``--margins`` (px before the slice; the tile is the smallest whole number of strides holding slice and margins),
with torch float32, with and without test-time augmentation, and once more in tiles of ``--multi-tile`` px
(several overlapping tiles per slice, blended; the margin is then also half the overlap). Every probability map
is scored with ``evaluate``'s scores (``--segment``: the cells' Rand error too) and compared with
``--reference`` (default: the package's rule; 86 px is what a 512 px slice got as one 688 px tile, tile // 8,
in earlier releases). Margins that differ by a multiple of the stride (16 px) place the slice on the same
pooling grid; others shift it by a few pixels against that grid. Tolerances, as for the precision paths: V_rand
(thinned), Rand error and pixel error within 0.002, warping error within 5e-5.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

TOLERANCES = {"vrand_thinned": 0.002, "rand_error": 0.002, "pixel_error": 0.002, "warping_error": 5e-5}


@contextmanager
def margin_of(margin: int | None) -> Iterator[None]:
    """Every tile of the predictions inside keeps `margin` px of context before the image (None: the package's
    rule); a slice is then one tile of the smallest whole number of strides holding it and its margins."""
    from unet_zoo.inference import region, tiling

    if margin is None:
        yield
        return
    saved = tiling._compact_margin, tiling.tile_margin
    tiling._compact_margin = lambda model, height, width: margin  # type: ignore[assignment]
    tiling.tile_margin = region.tile_margin = lambda model, tile, height, width: margin  # type: ignore[assignment]
    try:
        yield
    finally:
        tiling._compact_margin, tiling.tile_margin = saved  # type: ignore[assignment]
        region.tile_margin = saved[1]  # type: ignore[assignment]


def scores_for(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    margins: list[int | None],
    tta: bool,
    tile: int | None,
    segment: bool = False,
) -> dict[str, Any]:
    """Scores of checkpoint `name` on (S, H, W) `images` for each margin (None: the package's rule), torch fp32."""
    import unet_zoo
    from unet_zoo.evaluation.metrics import isbi_scores, segmentation_scores
    from unet_zoo.inference.tiling import choose_tile, predict_tiled
    from unet_zoo.segmentation import checkpoint_params, segment_probabilities

    model = unet_zoo.from_pretrained(name, device="cpu")
    out: dict[str, Any] = {}
    reference = None
    for margin in margins:
        with margin_of(margin):
            side = choose_tile(model, images.shape[1], images.shape[2], tile)
            start = time.perf_counter()
            probs = np.stack([predict_tiled(model, im, tile=tile, tta=tta, precision="fp32")[1] for im in images])
            seconds = (time.perf_counter() - start) / len(images)
        scores = isbi_scores(probs, labels)
        key = "package" if margin is None else str(margin)
        record = {"tile": side, "seconds_per_slice": seconds, "scores": {k: float(scores[k]) for k in TOLERANCES}}
        if segment:  # cells, with the checkpoint's segmentation defaults
            cells = np.stack([segment_probabilities(p, checkpoint_params(model)) for p in np.stack([1 - probs, probs], 1)])
            record["cells_rand_error"] = float(segmentation_scores(cells, labels)["rand_error"])
        if reference is None:
            reference = (record["scores"], probs)
        else:
            diff = {k: abs(record["scores"][k] - reference[0][k]) for k in TOLERANCES}
            record["differences"] = diff
            record["within_tolerance"] = all(diff[k] <= TOLERANCES[k] for k in TOLERANCES)
            record["max_probability_change"] = float(np.abs(probs - reference[1]).max())
        out[key] = record
        print(f"{name} tta={tta} tile={tile} margin={key}: {json.dumps(record)}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", default="isbi-small,isbi-padded", help="same-size checkpoints")
    parser.add_argument("--slices", default="24-29", help="held-out ISBI slices, FIRST-LAST")
    parser.add_argument("--margins", default="0,16,32,48,64", help="px of context per side to compare")
    parser.add_argument("--reference", type=int, default=None, help="the margin compared with (default: the package's)")
    parser.add_argument("--multi-tile", type=int, default=256, help="also predict in tiles of this side (0: skip)")
    parser.add_argument("--tta-checkpoints", default="isbi-small", help="checkpoints also scored with TTA")
    parser.add_argument("--segment", action="store_true", help="also score the cells (the checkpoint's defaults)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    import torch

    from unet_zoo.benchmark.suite import environment
    from unet_zoo.experiments.isbi2012.data import load_isbi

    torch.set_num_threads(1)
    first, last = (int(v) for v in args.slices.split("-"))
    margins: list[int | None] = [args.reference] + [int(m) for m in args.margins.split(",") if m]
    data = load_isbi(args.data_dir)
    images, labels = data.images[first : last + 1], data.labels[first : last + 1]
    results: dict[str, Any] = {}
    for name in args.checkpoints.split(","):
        runs = {"one tile": scores_for(name, images, labels, margins, False, None, args.segment)}
        if name in args.tta_checkpoints.split(","):
            runs["one tile, TTA"] = scores_for(name, images, labels, margins, True, None, args.segment)
        if args.multi_tile:
            runs[f"tiles of {args.multi_tile} px"] = scores_for(name, images, labels, margins, False, args.multi_tile)
        results[name] = runs
    print(f"slices {first}-{last}, torch fp32; differences from the reference margin (first row of each run)")
    print("| checkpoint | run | margin (px) | tile | V_rand (thinned) | Rand error | pixel error | warping error | within |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for name, runs in results.items():
        for run, rows in runs.items():
            for key, r in rows.items():
                s = r["scores"]
                within = {True: "yes", False: "no"}.get(r.get("within_tolerance"), "reference")
                print(
                    f"| {name} | {run} | {key} | {r['tile']} | {s['vrand_thinned']:.4f} | {s['rand_error']:.4f} | "
                    f"{s['pixel_error']:.4f} | {s['warping_error']:.6f} | {within} |"
                )
    if args.json:
        record = {"slices": [first, last], "tolerances": TOLERANCES, "results": results, "environment": environment("cpu")}
        args.json.write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
