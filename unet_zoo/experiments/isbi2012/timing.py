"""Wall time of `unet-zoo reproduce isbi` and the scores it reaches (the benchmark suite's ``reproduce`` section)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from unet_zoo.experiments.isbi2012 import reproduce as reproduce_module  # reproduce_isbi is looked up when it runs
from unet_zoo.utils.device import resolve_device


def bench_reproduce(
    variant: reproduce_module.Variant = "original",
    device: str | torch.device | None = None,
    *,
    quick: bool = False,
    steps: int | None = None,
    data_dir: str | Path | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Wall time of ``unet-zoo reproduce isbi`` (train + evaluate + write the Hub folder), in this process.

    Calls `unet_zoo.experiments.isbi2012.reproduce.reproduce_isbi` with the same arguments as the command
    (``--variant``, ``--quick``, ``--steps``, ``--device``, ``--data-dir``); the Hub folder goes to `out`
    (default: a temporary folder, deleted afterwards) so the benchmark never overwrites ``cards/``; the run
    folder goes to ``runs/`` as usual. Needs the ISBI 2012 data.

    Returns a JSON-serialisable dict: variant, quick, steps, device, command, wall_s (seconds for the
    whole call) and ``recipes``: per recipe its steps, tiles, train_s, eval_s, tiles_per_s and the
    held-out scores (rand_error, warping_error, pixel_error).
    """
    dev = resolve_device(device)
    command = (
        "unet-zoo reproduce isbi"
        + (" --quick" if quick else f" --variant {variant}")
        + (f" --steps {steps}" if steps else "")
        + f" --device {dev}"
    )
    if log is not None:
        log(command)
    with tempfile.TemporaryDirectory(prefix="unet_zoo-bench-reproduce-") as tmp:
        start = time.perf_counter()
        runs = reproduce_module.reproduce_isbi(
            variant,
            quick=quick,
            steps=steps,
            device=str(dev),
            data_dir=data_dir,
            out=out if out is not None else Path(tmp) / "hub",
        )
        wall = time.perf_counter() - start
    recipes = []
    for r in runs:
        tiles = r.train_result.step * r.recipe.train.batch_size
        recipes.append(
            {
                "recipe": r.recipe.name,
                "steps": r.train_result.step,
                "tiles": tiles,
                "tile": r.recipe.data.tile,
                "train_s": r.train_seconds,
                "eval_s": r.eval_seconds,
                "tiles_per_s": tiles / r.train_seconds if r.train_seconds > 0 else None,
                "run_dir": str(r.run_dir),
                **{k: r.metrics.get(k) for k in ("rand_error", "warping_error", "pixel_error")},
            }
        )
    return {
        "benchmark": "reproduce",
        "command": command,
        "variant": variant,
        "quick": quick,
        "steps": steps,
        "device": str(dev),
        "wall_s": wall,
        "recipes": recipes,
    }
