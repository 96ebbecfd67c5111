"""Benchmarks: our fast path against a plain float32 baseline, in the same process, as ratios.

Every benchmark runs OUR path (bf16 autocast, channels_last, optional torch.compile, cuDNN autotuning;
see `unet_zoo.runtime`) and the BASELINE (the same network built by `create_model`, float32,
eager, NCHW, PyTorch's default settings -- how most tutorials write it) one after the other and
reports both measurements and their ratio, because absolute times vary between machines and runs.

Achieved TFLOP/s uses FLOPs counted by ``torch.utils.flop_counter`` (multiply + add = 2) divided by
the median measured time, and is also given as a fraction of the bf16 matrix-multiply rate measured
on the same device in the same run (`unet_zoo.timing.matmul_tflops`).

``smoke=True`` shrinks everything (8 base channels, the smallest tiles, one step) so the whole suite
runs in seconds on a CPU; its timings mean nothing and no test asserts on them.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import reproduce as reproduce_module  # reproduce_isbi is looked up when the section runs
from ._version import __version__
from .augment import AugmentConfig, TileSampler, elastic_deform
from .augment_reference import elastic_deform_reference, random_displacement_reference
from .files import atomic_write_bytes
from .registry import create_model, get_entry
from .runtime import (
    Precision,
    Switch,
    fast_backend,
    prepare_input,
    prepare_model,
    resolve_device,
    runtime_settings,
)
from .sizes import nearest_valid_sizes_text, output_size
from .tiling import choose_tile, predict_tiled
from .timing import Timer, count_forward_flops, count_train_flops, matmul_tflops, profile_table
from .train_step import train_step

Log = Callable[[str], None]
SECTIONS = ("train", "inference", "augment")  # run by default
OPTIONAL_SECTIONS = ("reproduce",)  # long: only when asked for (``--only ...,reproduce``)
ALL_SECTIONS = SECTIONS + OPTIONAL_SECTIONS
TARGET_SPEEDUP = 3.0  # ours / baseline tiles/s, training `original`
TARGET_FRACTION = 0.40  # achieved TFLOP/s / measured bf16 matmul TFLOP/s
TARGET_AUGMENT_RATIO = 3.0  # augmentation tiles/s / training tiles/s
SMOKE_OVERRIDES = {"base_channels": 8}
CPU_MATMUL_N = 1024  # CPUs without bf16 units multiply bf16 at ~1 GFLOP/s: n = 2048 would take ~1 min per product


# --- small helpers ---------------------------------------------------------------------------------


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def _quiet(_: str) -> None:
    pass


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _overrides(model_name: str, smoke: bool) -> dict[str, Any]:
    """Architecture overrides for smoke runs: 8 base channels where the architecture has them."""
    if smoke and "base_channels" in get_entry(model_name).default_args:
        return dict(SMOKE_OVERRIDES)
    return {}


def smallest_tile(model: nn.Module, min_output: int = 4) -> int:
    """The smallest usable input side whose output side is at least `min_output` pixels."""
    for side in range(1, 4096):
        out = model.output_size(side)
        if out is not None and out >= min_output:
            return side
    raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} has no usable tile below 4096 px")


def _check_tile(model: nn.Module, tile: int) -> int:
    out = model.output_size(tile)
    if out is None:
        args = getattr(model, "model_args", {})
        if "depth" in args:
            hint = f"nearest usable tiles: {nearest_valid_sizes_text(tile, args['depth'], args['padding'])}"
        else:
            hint = f"use a multiple of {getattr(model, 'stride', 32)}"
        raise ValueError(f"tile {tile} is not usable for {getattr(model, 'model_name', 'this model')}; {hint}")
    return out


def _peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def path_config(
    device: torch.device, ours: bool, amp: bool | None, channels_last: bool | None, compile: bool | None
) -> dict[str, Any]:
    """How a path runs. Baseline: fp32, NCHW, eager, default backend. Ours: `unet_zoo.runtime.runtime_settings`
    for `device` (bf16, channels_last, compiled, cuDNN autotuning on CUDA), each switch forced when not None."""
    if not ours:
        return {"amp": None, "channels_last": False, "compile": False, "fast_backend": False}

    def switch(flag: bool | None) -> Switch:
        return "auto" if flag is None else ("on" if flag else "off")

    precision: Precision = "auto" if amp is None else ("bf16" if amp else "fp32")
    settings = runtime_settings(device, precision, switch(channels_last), switch(compile))
    return {
        "amp": "bf16" if settings.amp_dtype is not None else None,
        "channels_last": settings.channels_last,
        "compile": settings.compile,
        "fast_backend": settings.fast_backend,
    }


def describe(config: dict[str, Any]) -> str:
    """One-line description of a path configuration, e.g. 'bf16 autocast, channels_last, compiled'."""
    parts = [f"{config['amp']} autocast" if config["amp"] else "float32"]
    parts.append("channels_last" if config["channels_last"] else "NCHW")
    parts.append("compiled" if config["compile"] else "eager")
    if config.get("fast_backend"):
        parts.append("cudnn.benchmark")
    return ", ".join(parts)


def _backend(config: dict[str, Any]) -> contextlib.AbstractContextManager:
    return fast_backend() if config["fast_backend"] else contextlib.nullcontext()


# --- training step ---------------------------------------------------------------------------------


def _train_path(
    model_name: str,
    overrides: dict[str, Any],
    state: dict[str, torch.Tensor],
    config: dict[str, Any],
    device: torch.device,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    steps: int,
    warmup: int,
    lr: float,
    profile: bool,
) -> dict[str, Any]:
    """Time `steps` of the trainer's step (`unet_zoo.train_step`: forward, weighted CE, backward, SGD
    momentum-0.99 update) on one path."""
    torch.manual_seed(0)  # same dropout masks in both paths
    model = create_model(model_name, **overrides)
    model.load_state_dict(state)
    model.train()
    model = prepare_model(model, device, channels_last=config["channels_last"], compile=config["compile"])
    x, target, weight = batch
    x = prepare_input(x, device, channels_last=config["channels_last"])
    extra = {"fused": True} if config["fast_backend"] and device.type == "cuda" else {}
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.99, **extra)
    losses: list[torch.Tensor] = []

    def step() -> None:  # the trainer's step (unet_zoo.train_step), on a fixed batch
        losses.append(train_step(model, optimizer, x, target, weight, device, amp=config["amp"] is not None))

    result: dict[str, Any] = {"config": config, "description": describe(config)}
    with _backend(config):
        _reset_peak_memory(device)
        start = time.perf_counter()
        step()  # first call: compilation / cuDNN autotuning happen here
        result["first_step_s"] = time.perf_counter() - start
        timing = Timer(device, warmup=max(warmup - 1, 0), repeats=steps)(step)
        if profile:
            result["profile"] = profile_table(step, device, steps=min(steps, 3), warmup=0)
    result["timing"] = timing.as_dict()
    result["peak_memory_gib"] = _peak_memory_gib(device)
    result["final_loss"] = float(losses[-1])
    return result


def bench_train_step(
    model_name: str = "original",
    tile: int | None = 572,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    steps: int = 10,
    smoke: bool = False,
    *,
    warmup: int = 3,
    compile: bool | None = None,
    channels_last: bool | None = None,
    amp: bool | None = None,
    baseline: bool = True,
    peak_tflops: float | None = None,
    lr: float = 1e-4,
    profile: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Training-step throughput of our path vs the float32 eager baseline on (B, C, tile, tile) tiles.

    Args:
        model_name: registered architecture ("original": the paper's, 572 -> 388).
        tile: input side in pixels (None or smoke: the smallest usable tile).
        batch_size: tiles per step; None means 8 on CUDA and 1 on CPU.
        device: "cuda", "cpu" or None (CUDA when available).
        steps: timed steps per path (median reported); smoke forces 1.
        warmup: untimed steps per path before timing (compilation happens in the first).
        compile, channels_last, amp: our path's switches; None = on for CUDA, off for CPU.
        baseline: also run the float32 eager NCHW baseline and report the speed-up.
        peak_tflops: the measured bf16 matmul TFLOP/s to compare with; None measures it here.
        profile: add a ``torch.profiler`` top-ops table of our path to the result.

    Returns:
        A JSON-serialisable dict: model, tile, output_tile, batch_size, flops_per_step,
        bf16_matmul_tflops, ``ours`` and ``baseline`` (timing, tiles_per_s, tflops,
        fraction_of_bf16_matmul, peak_memory_gib, final_loss), speedup and targets.
    """
    dev = resolve_device(device)
    overrides = _overrides(model_name, smoke)
    torch.manual_seed(0)
    reference = create_model(model_name, **overrides)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    if smoke:
        tile, steps, warmup = smallest_tile(reference), 1, 1
    tile = tile or smallest_tile(reference)
    out = _check_tile(reference, tile)
    batch_size = batch_size or (8 if dev.type == "cuda" else 1)
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}")
    in_channels, num_classes = reference.in_channels, reference.num_classes
    flops = count_train_flops(reference, (batch_size, in_channels, tile, tile))
    del reference
    if peak_tflops is None:
        peak_tflops = matmul_tflops(dev, n=256 if smoke else (8192 if dev.type == "cuda" else CPU_MATMUL_N))

    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(batch_size, in_channels, tile, tile, device=dev, generator=gen)
    target = torch.randint(0, num_classes, (batch_size, out, out), device=dev, generator=gen)
    weight = 1 + 9 * torch.rand(batch_size, out, out, device=dev, generator=gen)
    batch = (x, target, weight)

    result: dict[str, Any] = {
        "benchmark": "train_step",
        "model": model_name,
        "overrides": overrides,
        "tile": tile,
        "output_tile": out,
        "batch_size": batch_size,
        "device": str(dev),
        "flops_per_step": flops,
        "flops_per_tile": flops / batch_size,
        "bf16_matmul_tflops": peak_tflops,
        "loss": "weighted cross-entropy (paper eq. 1), SGD momentum 0.99",
    }
    paths = [("ours", True)] + ([("baseline", False)] if baseline else [])
    for name, ours in paths:
        config = path_config(dev, ours, amp, channels_last, compile)
        log(f"train {model_name} {tile}px x{batch_size}: {name} ({describe(config)})")
        run = _train_path(model_name, overrides, state, config, dev, batch, steps, warmup, lr, profile and ours)
        _free(dev)  # the path's model and optimizer died with _train_path's frame: release their cached memory
        median = run["timing"]["median_s"]
        run["tiles_per_s"] = batch_size / median
        run["tflops"] = flops / median / 1e12
        run["fraction_of_bf16_matmul"] = ratio(run["tflops"], peak_tflops)
        result[name] = run
    result["speedup"] = ratio(result["ours"]["tiles_per_s"], result.get("baseline", {}).get("tiles_per_s"))
    result["smoke"] = smoke
    result["targets"] = _targets(
        smoke or dev.type != "cuda",
        {
            f"speedup >= {TARGET_SPEEDUP:g}x": (result["speedup"], TARGET_SPEEDUP),
            f"fraction of bf16 matmul >= {TARGET_FRACTION:.0%}": (
                result["ours"]["fraction_of_bf16_matmul"],
                TARGET_FRACTION,
            ),
        },
    )
    return result


def _targets(skip: bool, checks: dict[str, tuple[float | None, float]]) -> dict[str, bool | None]:
    """Target name -> met? None when not measured, or when `skip` (smoke runs, and non-CUDA devices:
    the targets are set for an H100)."""
    return {name: None if skip or value is None else value >= bound for name, (value, bound) in checks.items()}


# --- inference -------------------------------------------------------------------------------------


class _GeometryStub(nn.Module):
    """A zero-FLOP stand-in with a model's tiling geometry: crops (or keeps) the input, C classes.

    Timing `predict_tiled` with it measures everything but the network (mirror padding, tile
    stacking, host<->device copies, softmax, stitching): the most Mpx/s the tiling loop allows.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.in_channels, self.num_classes = model.in_channels, model.num_classes
        self.model_name = getattr(model, "model_name", None)
        for attr in ("depth", "padding", "stride"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))
        self._output_size = model.output_size
        self.anchor = nn.Parameter(torch.zeros(()))  # so .to() / device lookup work

    def output_size(self, input_size: int) -> int | None:
        return self._output_size(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output_size(x.shape[-1])
        border = (x.shape[-1] - out) // 2
        crop = x[:, :1, border : border + out, border : border + out]
        return crop.expand(-1, self.num_classes, -1, -1) + self.anchor


def _predict_path(
    model: nn.Module,
    image: np.ndarray,
    config: dict[str, Any],
    device: torch.device,
    tile: int | None,
    batch_size: int,
    tta: bool,
    warmup: int,
    repeats: int,
) -> tuple[dict[str, Any], list[tuple[int, ...]]]:
    """Time `predict_tiled` of one path; also return the input shapes of every forward call."""
    amp = config["amp"] is not None
    shapes: list[tuple[int, ...]] = []
    hook = model.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))

    def call() -> np.ndarray:
        return predict_tiled(model, image, tile=tile, batch_size=batch_size, device=device, tta=tta, amp=amp)

    result: dict[str, Any] = {"config": config, "description": describe(config)}
    if device.type == "cuda":
        result["note"] = "predict_tiled stores tiles channels_last on CUDA for every path"
    with _backend(config):
        _reset_peak_memory(device)
        start = time.perf_counter()
        call()  # records the forward shapes; compilation and autotuning happen here
        result["first_call_s"] = time.perf_counter() - start
        hook.remove()
        timing = Timer(device, warmup=max(warmup - 1, 0), repeats=repeats)(call)
    result["timing"] = timing.as_dict()
    result["peak_memory_gib"] = _peak_memory_gib(device)
    return result, shapes


def _forward_flops(model: nn.Module, shapes: Iterable[tuple[int, ...]]) -> int:
    cache: dict[tuple[int, ...], int] = {}
    total = 0
    for shape in shapes:
        if shape not in cache:
            cache[shape] = count_forward_flops(model, shape)
        total += cache[shape]
    return total


def bench_inference(
    model_name: str = "original",
    image_side: int = 4096,
    tta: bool = False,
    device: str | torch.device | None = None,
    smoke: bool = False,
    *,
    batch_size: int | None = None,
    tile: int | None = None,
    repeats: int = 3,
    warmup: int = 1,
    compile: bool | None = None,
    channels_last: bool | None = None,
    amp: bool | None = None,
    baseline: bool = True,
    ceiling: bool = True,
    peak_tflops: float | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Overlap-tile prediction (`unet_zoo.predict_tiled`) of one (image_side, image_side) uint8 image.

    Weights are random (the pretrained checkpoints have the same architecture, hence the same speed).

    Args:
        model_name: registered architecture ("original" = the paper's / isbi-original, "padded", ...).
        image_side: image height = width in pixels (smoke: 64).
        tta: average over the 8 flips/rotations (8x the work).
        batch_size: tiles per forward pass; None means 16 on CUDA and 4 on CPU.
        tile: input tile side; None lets `predict_tiled` choose (the model's default tile).
        repeats, warmup: timed and untimed calls per path.
        compile, channels_last, amp: our path's switches; None = on for CUDA, off for CPU.
        baseline: also time the float32 eager path; ceiling: also time a zero-FLOP stand-in model
            (the tiling loop's own limit).

    Returns:
        A JSON-serialisable dict: model, image_side, tta, tile, forward_calls, flops_per_image,
        ``ours``/``baseline`` (timing, megapixels_per_s, tflops, fraction_of_bf16_matmul),
        speedup, ``pipeline_ceiling`` (megapixels_per_s) and targets.
    """
    dev = resolve_device(device)
    overrides = _overrides(model_name, smoke)
    if smoke:
        image_side, repeats, warmup = 64, 1, 1
    if image_side < 1 or repeats < 1:
        raise ValueError(f"image_side and repeats must be >= 1, got image_side={image_side}, repeats={repeats}")
    batch_size = batch_size or (16 if dev.type == "cuda" else 4)
    torch.manual_seed(0)
    reference = create_model(model_name, **overrides)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    chosen_tile = choose_tile(reference, image_side, image_side, tile)
    if peak_tflops is None:
        peak_tflops = matmul_tflops(dev, n=256 if smoke else (8192 if dev.type == "cuda" else CPU_MATMUL_N))
    image = np.random.default_rng(0).integers(0, 256, (image_side, image_side), dtype=np.uint8)
    megapixels = image_side**2 / 1e6

    result: dict[str, Any] = {
        "benchmark": "inference",
        "model": model_name,
        "overrides": overrides,
        "weights": "random (same architecture and speed as the pretrained checkpoint)",
        "image_side": image_side,
        "tta": tta,
        "tile": chosen_tile,
        "output_tile": reference.output_size(chosen_tile),
        "batch_size": batch_size,
        "device": str(dev),
        "bf16_matmul_tflops": peak_tflops,
        "smoke": smoke,
    }
    paths = [("ours", True)] + ([("baseline", False)] if baseline else [])
    for name, ours in paths:
        config = path_config(dev, ours, amp, channels_last, compile)
        log(f"inference {model_name} {image_side}px tta={tta}: {name} ({describe(config)})")
        model = create_model(model_name, **overrides)
        model.load_state_dict(state)
        model = prepare_model(model.eval(), dev, channels_last=config["channels_last"], compile=config["compile"])
        run, shapes = _predict_path(model, image, config, dev, tile, batch_size, tta, warmup, repeats)
        flops = _forward_flops(reference, shapes)
        median = run["timing"]["median_s"]
        run.update(
            forward_calls=len(shapes),
            tiles=sum(s[0] for s in shapes),
            flops_per_image=flops,
            megapixels_per_s=megapixels / median,
            tflops=flops / median / 1e12,
            fraction_of_bf16_matmul=ratio(flops / median / 1e12, peak_tflops),
        )
        result[name] = run
        del model
        _free(dev)
    result["flops_per_image"] = result["ours"]["flops_per_image"]
    result["tiles"] = result["ours"]["tiles"]
    if ceiling:
        log(f"inference {model_name} {image_side}px tta={tta}: pipeline ceiling (zero-FLOP model)")
        stub = _GeometryStub(reference).to(dev)
        config = path_config(dev, True, amp, channels_last, False)
        run, _ = _predict_path(stub, image, config, dev, tile, batch_size, tta, warmup, repeats)
        run["megapixels_per_s"] = megapixels / run["timing"]["median_s"]
        result["pipeline_ceiling"] = run
    result["speedup"] = ratio(result["ours"]["megapixels_per_s"], result.get("baseline", {}).get("megapixels_per_s"))
    result["targets"] = _targets(
        smoke or dev.type != "cuda",
        {
            f"fraction of bf16 matmul >= {TARGET_FRACTION:.0%}": (
                result["ours"]["fraction_of_bf16_matmul"],
                TARGET_FRACTION,
            )
        },
    )
    return result


def bench_cpu_latency(
    model_names: Sequence[str] = ("original", "padded", "small"),
    side: int = 512,
    repeats: int = 3,
    warmup: int = 1,
    smoke: bool = False,
    threads: int | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Seconds to predict one (side, side) uint8 slice on the CPU with `predict_tiled` (fp32, batch 4).

    `threads` sets ``torch.set_num_threads`` for the measurement (restored afterwards); None keeps the
    current setting. Returns {"side", "threads", "models": {name: {tile, tiles, timing, median_s}}}.
    """
    if smoke:
        side, repeats, warmup = 64, 1, 0
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    image = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)
    result: dict[str, Any] = {
        "benchmark": "cpu_latency",
        "side": side,
        "threads": torch.get_num_threads(),
        "smoke": smoke,
        "models": {},
    }
    try:
        for name in model_names:
            log(f"cpu latency {name} {side}x{side}")
            torch.manual_seed(0)
            model = create_model(name, **_overrides(name, smoke)).eval()
            timing = Timer("cpu", warmup=warmup, repeats=repeats)(functools.partial(predict_tiled, model, image, device="cpu"))
            tile = choose_tile(model, side, side)
            result["models"][name] = {"tile": tile, "median_s": timing.median_s, "timing": timing.as_dict()}
    finally:
        torch.set_num_threads(old_threads)
    return result


# --- augmentation ----------------------------------------------------------------------------------


def _median_s(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median seconds of `repeats` calls of `fn` after one warm-up call (`unet_zoo.timing.Timer`)."""
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
    trainer's step (`unet_zoo.train_step`: forward, weighted cross-entropy, backward, SGD update) of that
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


# --- reproduce wall time ---------------------------------------------------------------------------


def bench_reproduce(
    variant: str = "original",
    device: str | torch.device | None = None,
    *,
    quick: bool = False,
    steps: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Wall time of ``unet-zoo reproduce isbi`` (train + evaluate + write the Hub folder), in this process.

    Calls `unet_zoo.reproduce.reproduce_isbi` with the same arguments as the command
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
                "tiles_per_s": ratio(tiles, r.train_seconds),
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


# --- the whole suite -------------------------------------------------------------------------------


def environment(device: str | torch.device | None = None) -> dict[str, Any]:
    """Versions and hardware of this run: device name, torch/CUDA/cuDNN versions, CPU, threads, git commit."""
    dev = resolve_device(device)
    env: dict[str, Any] = {
        "device": str(dev),
        "device_name": _cpu_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "unet_zoo": __version__,
        "git_commit": _git_commit(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        env.update(
            device_name=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            compute_capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
        )
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def default_settings(device: torch.device, smoke: bool) -> dict[str, Any]:
    """Sizes of a full run on this kind of device (CPU runs are shrunk to finish in minutes)."""
    # reproduce_*: the optional `reproduce` section; on a CPU the paper recipe takes days, so the --quick demo.
    reproduce = dict(reproduce_variant="original", reproduce_quick=device.type != "cuda", reproduce_steps=None, data_dir=None)
    if smoke:
        return dict(
            train_tile=None,
            train_batch=1,
            train_steps=1,
            train_warmup=1,
            inference_side=64,
            inference_models=("original",),
            inference_tta=(False,),
            inference_repeats=1,
            matmul_n=256,
            latency=True,
            **{**reproduce, "reproduce_quick": True, "reproduce_steps": 2},
        )
    if device.type == "cuda":
        return dict(
            train_tile=572,
            train_batch=8,
            train_steps=20,
            train_warmup=5,
            inference_side=4096,
            inference_models=("original", "padded"),
            inference_tta=(False, True),
            inference_repeats=5,
            matmul_n=8192,
            latency=False,
            **reproduce,
        )
    return dict(
        train_tile=572,
        train_batch=1,
        train_steps=3,
        train_warmup=1,
        inference_side=1024,
        inference_models=("original", "padded"),
        inference_tta=(False,),
        inference_repeats=2,
        matmul_n=CPU_MATMUL_N,
        latency=True,
        **reproduce,
    )


def run_all(
    device: str | torch.device | None = None,
    smoke: bool = False,
    out_dir: str | os.PathLike[str] | None = "bench-results",
    only: Iterable[str] | None = None,
    command: str | None = None,
    compile: bool | None = None,
    profile: bool = False,
    log: Log = _quiet,
    **settings: Any,
) -> dict[str, Any]:
    """Run the selected benchmarks (default: train, inference, augment; ``reproduce`` only when in
    `only`) and write results.json + results.md.

    Sections that fail are recorded with their error instead of stopping the suite. `settings`
    override `default_settings` (e.g. ``inference_side=2048``, ``train_batch=16``).
    Returns the results dict (``environment``, ``peak``, one key per section, ``errors``).
    """
    dev = resolve_device(device)
    sections = list(SECTIONS if only is None else only)
    unknown = set(sections) - set(ALL_SECTIONS)
    if unknown:
        raise ValueError(f"unknown benchmark(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL_SECTIONS)}")
    unknown_settings = set(settings) - set(default_settings(dev, smoke))
    if unknown_settings:
        raise TypeError(f"unknown setting(s) {', '.join(sorted(unknown_settings))}")
    cfg = {**default_settings(dev, smoke), **settings}
    results: dict[str, Any] = {
        "command": command or f"unet-zoo benchmark --device {dev}{' --smoke' if smoke else ''}",
        "smoke": smoke,
        "environment": environment(dev),
        "settings": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "errors": {},
    }
    peak = None
    if {"train", "inference"} & set(sections):  # the sections that compare achieved TFLOP/s with it
        log(f"measuring the matrix-multiply rate (n={cfg['matmul_n']})")
        results["peak"] = {
            "matmul_n": cfg["matmul_n"],
            "bf16_matmul_tflops": matmul_tflops(dev, torch.bfloat16, n=cfg["matmul_n"]),
            "fp32_matmul_tflops": matmul_tflops(dev, torch.float32, n=cfg["matmul_n"]),
        }
        peak = results["peak"]["bf16_matmul_tflops"]

    def guarded(name: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - one failing section must not lose the others
            results["errors"][name] = f"{type(err).__name__}: {err}"
            log(f"[{name}] failed: {type(err).__name__}: {err}")
            return None

    if "train" in sections:
        results["train"] = guarded(
            "train",
            lambda: bench_train_step(
                "original",
                cfg["train_tile"],
                cfg["train_batch"],
                dev,
                cfg["train_steps"],
                smoke,
                warmup=cfg["train_warmup"],
                compile=compile,
                peak_tflops=peak,
                profile=profile,
                log=log,
            ),
        )
    if "inference" in sections:
        runs = []
        for model_name in cfg["inference_models"]:
            for tta in cfg["inference_tta"]:
                runs.append(
                    guarded(
                        f"inference {model_name} tta={tta}",
                        lambda m=model_name, t=tta: bench_inference(
                            m,
                            cfg["inference_side"],
                            t,
                            dev,
                            smoke,
                            repeats=cfg["inference_repeats"],
                            compile=compile,
                            peak_tflops=peak,
                            log=log,
                        ),
                    )
                )
        results["inference"] = [r for r in runs if r is not None]
        if cfg["latency"]:
            results["cpu_latency"] = guarded("cpu_latency", lambda: bench_cpu_latency(smoke=smoke, log=log))
    fp32_peak = (results.get("peak") or {}).get("fp32_matmul_tflops")
    for run in [results.get("train") or {}, *(results.get("inference") or [])]:
        for path in ("ours", "baseline"):
            if run.get(path):
                run[path]["fraction_of_fp32_matmul"] = ratio(run[path]["tflops"], fp32_peak)
    if "augment" in sections:
        train = results.get("train") or {}
        results["augment"] = guarded(
            "augment",
            lambda: bench_augmentation(
                batch_size=cfg["train_batch"] if not smoke else 2,
                device=dev,
                smoke=smoke,
                train_tiles_per_s=(train.get("ours") or {}).get("tiles_per_s"),
                log=log,
            ),
        )
    if "reproduce" in sections:
        results["reproduce"] = guarded(
            "reproduce",
            lambda: bench_reproduce(
                cfg["reproduce_variant"],
                dev,
                quick=cfg["reproduce_quick"],
                steps=cfg["reproduce_steps"],
                data_dir=cfg["data_dir"],
                log=log,
            ),
        )
    results["load_average_1m_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if out_dir is not None:
        write_results(results, out_dir)
    return results


def write_results(results: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write `results` to out_dir/results.json and out_dir/results.md (atomically); return both paths."""
    out = Path(out_dir)
    json_path, md_path = out / "results.json", out / "results.md"
    atomic_write_bytes(json_path, json.dumps(results, indent=2, default=str) + "\n")
    atomic_write_bytes(md_path, to_markdown(results))
    return json_path, md_path


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.3g}%"


def _met(targets: dict[str, bool | None] | None) -> str:
    if not targets:
        return "-"
    return "; ".join(f"{name}: {_fmt(ok) if ok is not None else 'n/a'}" for name, ok in targets.items())


def to_markdown(results: dict[str, Any]) -> str:
    """A Markdown report of `run_all` results: machine, versions, command, one table per benchmark."""
    env = results.get("environment", {})
    peak = results.get("peak", {})
    lines = [
        "# unet_zoo benchmark results",
        "",
        f"- command: `{results.get('command', '')}`",
        f"- device: {env.get('device_name')} ({env.get('device')}); CPU: {env.get('cpu')}, "
        f"{env.get('torch_threads')} torch threads; 1-min load average {_fmt(env.get('load_average_1m'))} at start, "
        f"{_fmt(results.get('load_average_1m_at_end'))} at end",
        f"- torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, "
        f"python {env.get('python')}, unet_zoo {env.get('unet_zoo')} ({env.get('git_commit')}), {env.get('date_utc')}",
    ]
    if peak:
        lines.append(
            f"- measured matmul rate (n={peak.get('matmul_n')}): bf16 {_fmt(peak.get('bf16_matmul_tflops'))} TFLOP/s, "
            f"fp32 {_fmt(peak.get('fp32_matmul_tflops'))} TFLOP/s"
        )
    if results.get("smoke"):
        lines.append("- **smoke mode**: tiny models and sizes; the timings below mean nothing")
    train = results.get("train")
    if train:
        lines += [
            "",
            f"## Training step: `{train['model']}`, {train['tile']}x{train['tile']} -> {train['output_tile']}, "
            f"batch {train['batch_size']}",
            "",
            f"FLOPs per step (forward + backward, flop_counter): {train['flops_per_step'] / 1e9:.1f} G",
            "",
            "| path | configuration | step s (median) | tiles/s | TFLOP/s | of bf16 matmul | of fp32 matmul | peak GiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ("ours", "baseline"):
            run = train.get(name)
            if run:
                lines.append(
                    f"| {name} | {run['description']} | {_fmt(run['timing']['median_s'])} | {_fmt(run['tiles_per_s'])} "
                    f"| {_fmt(run['tflops'])} | {_percent(run.get('fraction_of_bf16_matmul'))} "
                    f"| {_percent(run.get('fraction_of_fp32_matmul'))} | {_fmt(run['peak_memory_gib'])} |"
                )
        lines += ["", f"Speed-up ours / baseline: **{_fmt(train['speedup'])}x**. Targets: {_met(train.get('targets'))}"]
    inference = results.get("inference")
    if inference:
        lines += [
            "",
            "## Inference: overlap-tile prediction (`predict_tiled`)",
            "",
            "| model | image | TTA | tile | batch | ours Mpx/s | baseline Mpx/s | speed-up | ours TFLOP/s "
            "| of bf16 matmul | of fp32 matmul | tiling-loop ceiling Mpx/s | targets |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in inference:
            ours, base = r["ours"], r.get("baseline") or {}
            ceiling = (r.get("pipeline_ceiling") or {}).get("megapixels_per_s")
            lines.append(
                f"| {r['model']} | {r['image_side']}^2 | {'yes' if r['tta'] else 'no'} | {r['tile']} | {r['batch_size']} "
                f"| {_fmt(ours['megapixels_per_s'])} | {_fmt(base.get('megapixels_per_s'))} | {_fmt(r['speedup'])} "
                f"| {_fmt(ours['tflops'])} | {_percent(ours.get('fraction_of_bf16_matmul'))} "
                f"| {_percent(ours.get('fraction_of_fp32_matmul'))} | {_fmt(ceiling)} | {_met(r.get('targets'))} |"
            )
    latency = results.get("cpu_latency")
    if latency:
        lines += [
            "",
            f"## CPU latency: one {latency['side']}x{latency['side']} slice, {latency['threads']} threads, float32",
            "",
            "| model | tile | seconds (median) |",
            "|---|---:|---:|",
        ]
        for name, r in latency["models"].items():
            lines.append(f"| {name} | {r['tile']} | {_fmt(r['median_s'])} |")
    augment = results.get("augment")
    if augment:
        lines += [
            "",
            f"## Augmentation: {augment['tile']}px tiles, batch {augment['batch_size']}",
            "",
            "| pipeline tiles/s | scipy reference tiles/s | vs reference | training step tiles/s "
            "| pipeline / training | targets |",
            "|---:|---:|---:|---:|---:|---|",
            f"| {_fmt(augment['tiles_per_s'])} | {_fmt(augment['scipy_reference_tiles_per_s'])} "
            f"| {_fmt(augment['speedup_vs_reference'])} | {_fmt(augment['train_tiles_per_s'])} "
            f"| {_fmt(augment['ratio_to_training'])} | {_met(augment.get('targets'))} |",
        ]
    reproduce = results.get("reproduce")
    if reproduce:
        lines += [
            "",
            f"## `{reproduce['command']}`: wall time {_fmt(reproduce['wall_s'])} s (train + evaluate + write the Hub folder)",
            "",
            "| recipe | steps | tile | train s | train tiles/s | evaluate s | rand error | warping error | pixel error |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in reproduce["recipes"]:
            lines.append(
                f"| {r['recipe']} | {r['steps']} | {r['tile']} | {_fmt(r['train_s'])} | {_fmt(r['tiles_per_s'])} "
                f"| {_fmt(r['eval_s'])} | {_fmt(r['rand_error'])} | {_fmt(r['warping_error'])} | {_fmt(r['pixel_error'])} |"
            )
    if results.get("errors"):
        lines += ["", "## Errors", ""] + [f"- {name}: {err}" for name, err in results["errors"].items()]
    profile = (train or {}).get("ours", {}).get("profile")
    if profile:
        lines += ["", "## Profile of our training step (top ops)", "", "```", profile.rstrip(), "```"]
    return "\n".join(lines) + "\n"


__all__ = [
    "ALL_SECTIONS",
    "SECTIONS",
    "augmentation_tiles_per_s",
    "bench_augmentation",
    "bench_cpu_latency",
    "bench_inference",
    "bench_reproduce",
    "bench_train_step",
    "environment",
    "ratio",
    "run_all",
    "smallest_tile",
    "to_markdown",
    "write_results",
]
