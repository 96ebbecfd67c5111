"""Training-step throughput: the trainer's step (`unet_zoo.training.step`), ours vs the float32 eager baseline."""

from __future__ import annotations

import time
from typing import Any

import torch

from unet_zoo.benchmark._common import (
    CPU_MATMUL_N,
    TARGET_FRACTION,
    TARGET_SPEEDUP,
    Log,
    _backend,
    _check_tile,
    _free,
    _overrides,
    _peak_memory_gib,
    _quiet,
    _reset_peak_memory,
    _targets,
    describe,
    path_config,
    ratio,
    smallest_tile,
)
from unet_zoo.models.registry import create_model
from unet_zoo.runtime.settings import (
    prepare_input,
    prepare_model,
    resolve_device,
)
from unet_zoo.training.step import train_step
from unet_zoo.utils.timing import Timer, count_train_flops, matmul_tflops, profile_table

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
    """Time `steps` of the trainer's step (`unet_zoo.training.step`: forward, weighted CE, backward, SGD
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

    def step() -> None:  # the trainer's step (unet_zoo.training.step), on a fixed batch
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
