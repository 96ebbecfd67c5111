"""What every benchmark shares: targets, switches of our path, small helpers."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import get_entry
from unet_zoo.models.sizes import nearest_valid_sizes_text
from unet_zoo.models.window import Margins, WindowedLogits
from unet_zoo.runtime.settings import (
    Precision,
    Switch,
    fast_backend,
    runtime_settings,
)
from unet_zoo.utils.timing import count_forward_flops

Log = Callable[[str], None]
SECTIONS = ("train", "inference", "augment")  # run by default
CPU_SECTIONS = SECTIONS + ("precision",)  # run by default on a CPU: the precision section measures the CPU
OPTIONAL_SECTIONS = ("reproduce",)  # long: only when asked for (``--only ...,reproduce``)
ALL_SECTIONS = CPU_SECTIONS + OPTIONAL_SECTIONS
TARGET_SPEEDUP = 3.0  # ours / baseline tiles/s, training `original`
TARGET_FRACTION = 0.40  # achieved TFLOP/s / measured bf16 matmul TFLOP/s
TARGET_AUGMENT_RATIO = 3.0  # augmentation tiles/s / training tiles/s
SMOKE_OVERRIDES = {"base_channels": 8}
CPU_MATMUL_N = 1024  # CPUs without bf16 units multiply bf16 at ~1 GFLOP/s: n = 2048 would take ~1 min per product


# --- small helpers ---------------------------------------------------------------------------------


ForwardCall = tuple[tuple[int, ...], Margins | None]
"""A forward call's input shape and output window (`unet_zoo.models.window`; None: the whole output)."""


def forward_calls_flops(model: nn.Module, calls: Iterable[ForwardCall]) -> int:
    """FLOPs of forward calls of `model`: each (input shape, margins) counted once per batch item, the window's
    alone where one was asked for."""
    per_item: dict[ForwardCall, int] = {}
    total = 0
    for shape, margins in calls:
        key = ((1, *shape[1:]), margins)
        if key not in per_item:
            net = model if margins is None else WindowedLogits(model, margins).eval()
            per_item[key] = count_forward_flops(net, key[0])
        total += per_item[key] * shape[0]
    return total


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def default_sections(device: torch.device) -> tuple[str, ...]:
    """The sections `run_all` runs when not told which: `CPU_SECTIONS` on a CPU, `SECTIONS` elsewhere."""
    return CPU_SECTIONS if device.type == "cpu" else SECTIONS


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
    raise ValueError(f"{provenance_of(model).architecture} has no usable tile below 4096 px")


def _check_tile(model: nn.Module, tile: int) -> int:
    out = model.output_size(tile)
    if out is None:
        args = provenance_of(model).args
        if "depth" in args:
            hint = f"nearest usable tiles: {nearest_valid_sizes_text(tile, args['depth'], args['padding'])}"
        else:
            hint = f"use a multiple of {getattr(model, 'stride', 32)}"
        raise ValueError(f"tile {tile} is not usable for {provenance_of(model).label}; {hint}")
    return out


def _peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def path_config(
    device: torch.device, ours: bool, amp: bool | None, channels_last: bool | None, compile: bool | None
) -> dict[str, Any]:
    """How a path runs. Baseline: fp32, NCHW, eager, default backend. Ours: `unet_zoo.runtime.settings.runtime_settings`
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


def _targets(skip: bool, checks: dict[str, tuple[float | None, float]]) -> dict[str, bool | None]:
    """Target name -> met? None when not measured, or when `skip` (smoke runs, and non-CUDA devices:
    the targets are set for an H100)."""
    return {name: None if skip or value is None else value >= bound for name, (value, bound) in checks.items()}
