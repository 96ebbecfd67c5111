"""The on-device augmentation pipeline vs the scipy reference, and vs the rate training consumes tiles."""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from unet_zoo.benchmark._common import (
    TARGET_AUGMENT_RATIO,
    Log,
    _quiet,
    _targets,
    ratio,
)
from unet_zoo.data._augment_reference import elastic_deform_reference, random_displacement_reference
from unet_zoo.data.augment import AugmentConfig, TileSampler, elastic_deform
from unet_zoo.models.registry import create_model
from unet_zoo.models.sizes import output_size
from unet_zoo.runtime.settings import (
    resolve_device,
)
from unet_zoo.training.step import train_step
from unet_zoo.utils.timing import Timer

# --- augmentation ----------------------------------------------------------------------------------


def _median_s(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median seconds of `repeats` calls of `fn` after one warm-up call (`unet_zoo.utils.timing.Timer`)."""
    return Timer(device, warmup=1, repeats=repeats)(fn).median_s


def benchmark_augmentation(
    batch_size: int = 8,
    tile: int = 572,
    device: str | torch.device | None = None,
    repeats: int = 3,
    *,
    reference: bool = True,
    train_model: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Time one batch of `batch_size` augmented `tile` x `tile` tiles (image + label + weight map).

    Rows (seconds per batch, median of `repeats` after a warm-up), on synthetic 512 x 512 slices:
    - "scipy reference (cpu)": per tile, a random field and three scipy map_coordinates calls
      (image cubic, label nearest, weight linear), i.e. elastic deformation only;
    - "elastic_deform (<dev>)": the torch path on an already cut (N, 1, tile, tile) batch (same work);
    - "TileSampler.sample (<dev>)": the full pipeline: crop from mirrored slices + flip + rotation +
      elastic + grey values, output tile = the `original` model's output for `tile`.
    Devices: the CPU, plus `device` (default: "cuda" when available). `train_model`: also time the
    trainer's step (`unet_zoo.training.step`: forward, weighted cross-entropy, backward, SGD update) of that
    model (e.g. "original") on the batch, on each torch device except the CPU (too slow there).
    Returns a JSON-serialisable dict with "rows" and machine info.
    """
    devices = [torch.device("cpu")]
    extra = torch.device(device) if device is not None else (torch.device("cuda") if torch.cuda.is_available() else None)
    if extra is not None and extra.type != "cpu":
        devices.append(extra)
    out_tile = output_size(tile) or tile
    rng = np.random.default_rng(seed)
    side = 512
    slices = 4
    images = rng.integers(0, 256, (slices, side, side), dtype=np.uint8)
    labels = (rng.random((slices, side, side)) < 0.8).astype(np.uint8)
    weights = rng.random((slices, side, side), dtype=np.float32) * 10
    rows: list[dict[str, Any]] = []

    if reference:
        img_t = images[0, :tile, :tile] if tile <= side else np.pad(images[0], (0, tile - side), mode="reflect")
        lab_t = (
            labels[0, : img_t.shape[0], : img_t.shape[1]] if tile <= side else np.pad(labels[0], (0, tile - side), mode="reflect")
        )
        wgt_t = (
            weights[0, : img_t.shape[0], : img_t.shape[1]]
            if tile <= side
            else np.pad(weights[0], (0, tile - side), mode="reflect")
        )
        img_f = img_t.astype(np.float32) / 255

        def run_reference() -> None:
            for _ in range(batch_size):
                field_ = random_displacement_reference(tile, tile, 3, 10.0, rng)
                elastic_deform_reference(img_f, lab_t, wgt_t, field_)

        seconds = _median_s(run_reference, repeats, torch.device("cpu"))
        rows.append({"method": "scipy reference", "device": "cpu", "seconds_per_batch": seconds})

    for dev in devices:
        gen = torch.Generator(device=dev).manual_seed(seed)
        x = torch.rand(batch_size, 1, tile, tile, device=dev)
        y = (torch.rand(batch_size, 1, tile, tile, device=dev) < 0.8).to(torch.uint8)
        wt = torch.rand(batch_size, 1, tile, tile, device=dev)
        seconds = _median_s(functools.partial(elastic_deform, x, y, wt, generator=gen), repeats, dev)
        rows.append({"method": "elastic_deform", "device": str(dev), "seconds_per_batch": seconds})
        sampler = TileSampler(images, labels, weights, tile, out_tile, AugmentConfig(), device=dev)
        seconds = _median_s(functools.partial(sampler.sample, batch_size, gen), repeats, dev)
        rows.append({"method": "TileSampler.sample", "device": str(dev), "seconds_per_batch": seconds})
        if train_model and dev.type != "cpu":
            model = create_model(train_model).to(dev)
            opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.99)
            xb, yb, wb = sampler.sample(batch_size, gen)
            if model.output_size(tile) != out_tile:  # padded model: its output is the whole tile
                raise ValueError(f"train_model {train_model!r} does not map {tile} -> {out_tile}")
            seconds = _median_s(functools.partial(train_step, model, opt, xb, yb, wb, dev), repeats, dev)
            rows.append({"method": f"train step {train_model}", "device": str(dev), "seconds_per_batch": seconds})

    ref = next((r["seconds_per_batch"] for r in rows if r["method"] == "scipy reference"), None)
    for r in rows:
        r["ms_per_tile"] = 1000 * r["seconds_per_batch"] / batch_size
        if ref and not r["method"].startswith("train"):
            r["speedup_vs_reference"] = ref / r["seconds_per_batch"]
    return {
        "batch_size": batch_size,
        "tile": tile,
        "out_tile": out_tile,
        "repeats": repeats,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "gpu": torch.cuda.get_device_name(extra) if extra is not None and extra.type == "cuda" else None,
        "rows": rows,
    }


def _rows(result: dict[str, Any], method: str) -> list[dict[str, Any]]:
    return [r for r in result.get("rows", []) if r.get("method") == method and r.get("seconds_per_batch")]


def augmentation_tiles_per_s(result: dict[str, Any], device: str = "cpu", method: str = "TileSampler.sample") -> float:
    """Tiles/s of the full augmentation pipeline on `device` from a ``benchmark_augmentation`` result.

    Reads the row of `method` (crop + flip + rotation + elastic deformation + grey values, with the
    weight map warped alongside) on `device` (or on a device of the same type): batch / seconds.
    """
    rows = _rows(result, method)
    dev_type = torch.device(device).type
    row = next((r for r in rows if r["device"] == str(device)), None) or next(
        (r for r in rows if torch.device(r["device"]).type == dev_type), None
    )
    if row is None:
        found = sorted({(r.get("method"), r.get("device")) for r in result.get("rows", [])})
        raise KeyError(f"no {method!r} row for device {device} in the augmentation benchmark result; rows: {found}")
    return result["batch_size"] / row["seconds_per_batch"]


def bench_augmentation(
    batch_size: int = 8,
    tile: int = 572,
    device: str | torch.device | None = None,
    repeats: int = 5,
    smoke: bool = False,
    train_tiles_per_s: float | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Tiles/s of the augmentation pipeline (elastic deformation + weight maps) vs the training step.

    Calls `benchmark_augmentation` and adds ``ratio_to_training`` =
    augmentation tiles/s / `train_tiles_per_s` (target >= 3: augmentation never the bottleneck).
    """
    dev = resolve_device(device)
    if smoke:
        batch_size, tile, repeats = 2, 188, 1
    log(f"augmentation {tile}px x{batch_size} on {dev}")
    raw = benchmark_augmentation(batch_size=batch_size, tile=tile, device=str(dev), repeats=repeats)
    tiles_per_s = augmentation_tiles_per_s(raw, str(dev))
    reference = _rows(raw, "scipy reference")
    reference_tiles_per_s = raw["batch_size"] / reference[0]["seconds_per_batch"] if reference else None
    result: dict[str, Any] = {
        "benchmark": "augmentation",
        "device": str(dev),
        "batch_size": batch_size,
        "tile": tile,
        "smoke": smoke,
        "tiles_per_s": tiles_per_s,
        "scipy_reference_tiles_per_s": reference_tiles_per_s,
        "speedup_vs_reference": ratio(tiles_per_s, reference_tiles_per_s),
        "train_tiles_per_s": train_tiles_per_s,
        "ratio_to_training": ratio(tiles_per_s, train_tiles_per_s),
        "details": raw,
    }
    result["targets"] = _targets(
        smoke or dev.type != "cuda",
        {f"augmentation >= {TARGET_AUGMENT_RATIO:g}x training": (result["ratio_to_training"], TARGET_AUGMENT_RATIO)},
    )
    return result
