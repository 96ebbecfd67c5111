"""The precision training steps run in for "auto": bf16 autocast where a measured step is faster, remembered.

`choose_training_precision` times one training step in float32 and in bf16 autocast on the CPU
(`measure_training_precisions`) and keeps the faster; on CUDA "auto" is bf16 where the GPU supports it. The
choice is cached with the inference paths' (`unet_zoo.runtime.measured`); ``$UNET_ZOO_TRAINING_PRECISION``
forces one. `execution_config` is the whole fast path of a recipe's run: precision, channels_last and compile.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from typing import Any, Literal

import torch

from unet_zoo.models.registry import create_model
from unet_zoo.runtime.measured import (
    MEASURE_BUDGET_S,
    TRAINING_PRECISION_ENV,
    TRAINING_PRECISIONS,
    Log,
    TrainingChoice,
    cache_key,
    faster_training_precision,
    read_runtime_cache,
    store_runtime_entry,
    training_key_parts,
)
from unet_zoo.runtime.settings import RuntimeSettings, Switch, cpu_bf16_hardware, prepare_input, prepare_model, runtime_settings
from unet_zoo.training.recipes import Recipe
from unet_zoo.training.step import train_step
from unet_zoo.utils.device import resolve_device


def measure_training_precisions(
    model_name: str,
    model_args: dict[str, Any],
    tile: int,
    batch: int,
    device: str | torch.device | None = "cpu",
    *,
    budget_s: float = MEASURE_BUDGET_S,
    precisions: Iterable[str] = TRAINING_PRECISIONS,
    log: Log | None = None,
) -> dict[str, float | None]:
    """Seconds of one training step (`unet_zoo.training.step.train_step`: forward, weighted loss, backward, SGD)
    on (batch, C_in, tile, tile) random tiles, per precision: the fastest timed step after one untimed one, each
    precision timed for its share of `budget_s`. A precision that fails to run gets None. The caller's random
    streams are left as they were."""
    dev = resolve_device(device)
    names = list(precisions)
    share = budget_s / max(1, len(names))
    result: dict[str, float | None] = {}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        for precision in names:
            if log is not None:
                log(f"measuring a {precision} training step on {dev.type}")
            try:
                torch.manual_seed(0)
                settings = runtime_settings(dev, precision)  # type: ignore[arg-type]  # "fp32" or "bf16"
                model = create_model(model_name, **model_args)
                net = prepare_model(model, dev, channels_last=settings.channels_last).train()
                optimizer = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.99)
                x = prepare_input(
                    torch.rand(batch, int(getattr(model, "in_channels", 1)), tile, tile),
                    dev,
                    channels_last=settings.channels_last,
                )
                out = int(model.output_size(tile))  # type: ignore[operator]  # a zoo model's method
                target = torch.randint(0, int(getattr(model, "num_classes", 2)), (batch, out, out), device=dev)
                amp = settings.amp_dtype is not None
                train_step(net, optimizer, x, target, None, dev, amp=amp)  # warm-up
                seconds: list[float] = []
                started = time.perf_counter()
                while not seconds or time.perf_counter() - started < share:
                    t0 = time.perf_counter()
                    train_step(net, optimizer, x, target, None, dev, amp=amp)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    seconds.append(time.perf_counter() - t0)
                result[precision] = min(seconds)
            except Exception:  # noqa: BLE001  a precision that cannot run here is not chosen
                result[precision] = None
    return result


def choose_training_precision(
    model_name: str,
    model_args: dict[str, Any],
    tile: int,
    batch: int,
    device: str | torch.device | None = "cpu",
    *,
    precision: str = "auto",
    refresh: bool = False,
    log: Log | None = None,
) -> TrainingChoice:
    """The precision of training steps: `precision` when it is "bf16" or "fp32"; for "auto",
    ``$UNET_ZOO_TRAINING_PRECISION`` when set, bf16 on CUDA GPUs that support it, and on the CPU bf16 autocast
    where it has bf16 units and a measured step (`measure_training_precisions`, cached per machine,
    architecture and tile/batch) is faster than float32; else float32."""
    if precision in TRAINING_PRECISIONS:
        return TrainingChoice(precision, "forced")  # type: ignore[arg-type]  # checked above
    if precision != "auto":
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    env = os.environ.get(TRAINING_PRECISION_ENV, "").strip()
    if env:
        if env not in TRAINING_PRECISIONS:
            raise ValueError(f"{TRAINING_PRECISION_ENV}={env!r} must be fp32 or bf16 (or unset)")
        return TrainingChoice(env, "environment")  # type: ignore[arg-type]  # checked above
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if dev.type == "cuda":
        return TrainingChoice("bf16" if torch.cuda.is_bf16_supported() else "fp32", "rule")
    if dev.type != "cpu" or cpu_bf16_hardware() is None:
        return TrainingChoice("fp32", "rule")  # bf16 would be emulated: always slower
    key_parts = training_key_parts(model_name, model_args, tile, batch, dev)
    key = cache_key(key_parts)
    entry = None if refresh else read_runtime_cache()["training"].get(key)
    if isinstance(entry, dict) and isinstance(entry.get("timings"), dict):
        return TrainingChoice(faster_training_precision(entry["timings"]), "cached", dict(entry["timings"]))
    timings = measure_training_precisions(model_name, model_args, tile, batch, dev, log=log)
    chosen = faster_training_precision(timings)
    store_runtime_entry(
        "training",
        key,
        {**key_parts, "timings": timings, "chosen": chosen, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
    return TrainingChoice(chosen, "measured", timings)


def training_precision(recipe: Recipe, device: torch.device) -> TrainingChoice:
    """The precision the recipe's steps run in on `device`: ``train.precision`` "bf16" / "fp32" as it says; "auto"
    as measured on this machine (`unet_zoo.training.precision.choose_training_precision`: bf16 autocast where one
    step of this architecture, tile and batch runs faster in it; cached), bf16 on CUDA GPUs that support it."""
    t = recipe.train
    return choose_training_precision(
        recipe.model.name, dict(recipe.model.args), recipe.data.tile, t.batch_size, device, precision=t.precision
    )


def execution_config(
    recipe: Recipe,
    device: torch.device,
    compile: bool | None = None,
    precision: Literal["bf16", "fp32"] | None = None,
) -> RuntimeSettings:
    """The fast path the recipe asks for on `device`, decided by `unet_zoo.runtime.settings.runtime_settings`.

    `precision` ("bf16" or "fp32": what a resumed run started with) wins; else ``train.precision`` as
    `training_precision` decides it. ``train.channels_last`` ("auto": on for CUDA and for bf16) is passed on
    as it is. ``train.compile`` applies on CUDA only; an explicit `compile` (the ``--compile/--no-compile``
    flag) overrides it on every device.
    """
    t = recipe.train
    compile_switch: Switch = ("on" if compile else "off") if compile is not None else ("auto" if t.compile else "off")
    try:
        chosen = precision or training_precision(recipe, device).precision
        return runtime_settings(device, chosen, t.channels_last, compile_switch)
    except ValueError as err:  # say which recipe key asked for it
        raise ValueError(f"train.{err}") from None


__all__ = ["choose_training_precision", "execution_config", "measure_training_precisions", "training_precision"]
