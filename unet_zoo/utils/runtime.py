"""Runtime settings: the one place that decides how a model runs fast on a device, and applies it.

`runtime_settings` turns (device, precision, channels_last, compile) into a `RuntimeSettings`: bf16
autocast on CUDA GPUs with bf16 support, channels_last (NHWC) on CUDA, torch.compile when asked. Training,
tiled prediction and the benchmarks apply the settings with `prepare_model`, `prepare_input` and
`autocast`, and run under `fast_backend` (cuDNN autotuning, TF32 matmuls; restored on exit)::

    settings = runtime_settings("cuda")                                    # bf16, channels_last
    model = prepare_model(create_model("original"), "cuda", channels_last=settings.channels_last)
    with fast_backend(), autocast("cuda", enabled=settings.amp_dtype is not None):
        logits = model(prepare_input(x, "cuda", channels_last=settings.channels_last))
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, cast

import torch
from torch import nn

from unet_zoo.utils.device import resolve_device

Precision = Literal["auto", "bf16", "fp32"]
Switch = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class RuntimeSettings:
    """How a model runs on its device: autocast dtype (None = float32), channels_last, torch.compile, and
    whether to run under `fast_backend` (cuDNN autotuning, TF32)."""

    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    fast_backend: bool


def is_cuda(device: str | torch.device | None) -> bool:
    """True when `device` resolves to a CUDA device."""
    return resolve_device(device).type == "cuda"


def bf16_supported(device: str | torch.device | None) -> bool:
    """True when bf16 arithmetic is native on `device` (CUDA compute capability >= 8.0, or any CPU)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return dev.type == "cpu"


def runtime_settings(
    device: str | torch.device | None = None,
    precision: Precision = "auto",
    channels_last: Switch = "auto",
    compile: Switch = "off",
) -> RuntimeSettings:
    """The settings for running on `device`.

    Args:
        device: "cpu", "cuda", "cuda:N", a torch.device, or None (CUDA when available).
        precision: "auto" = bf16 autocast on CUDA GPUs with bf16 support (compute capability >= 8, e.g.
            A100/H100), float32 elsewhere; "bf16" forces it (ValueError on a GPU without bf16; on the CPU
            it runs CPU bf16 autocast); "fp32" never uses it.
        channels_last: "auto" = on for CUDA, off elsewhere; "on" / "off" force it.
        compile: "auto" = torch.compile on CUDA only; "on" everywhere; "off" never.

    `fast_backend` (cuDNN autotuning, TF32 float32 matmuls) is on for CUDA: float32 results may differ in
    the last bits, which on the CPU nothing would gain from.
    """
    for name, value, allowed in (
        ("precision", precision, ("auto", "bf16", "fp32")),
        ("channels_last", channels_last, ("auto", "on", "off")),
        ("compile", compile, ("auto", "on", "off")),
    ):
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    dev = resolve_device(device) if not isinstance(device, torch.device) else device
    cuda = dev.type == "cuda"
    bf16_ok = not cuda or torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16_ok:
        raise ValueError(
            f"precision = 'bf16' but {torch.cuda.get_device_name(dev)} has no bfloat16 support; use precision = 'auto' or 'fp32'"
        )
    amp = precision == "bf16" or (precision == "auto" and cuda and bf16_ok)
    return RuntimeSettings(
        amp_dtype=torch.bfloat16 if amp else None,
        channels_last=channels_last == "on" or (channels_last == "auto" and cuda),
        compile=compile == "on" or (compile == "auto" and cuda),
        fast_backend=cuda,
    )


def prepare_model(
    model: nn.Module,
    device: str | torch.device | None = None,
    *,
    channels_last: bool | None = None,
    compile: bool = False,
) -> nn.Module:
    """Move `model` to `device` in the fast memory layout, optionally wrapped by `torch.compile`.

    Args:
        model: any (N, C, H, W) -> (N, K, H', W') module; moved in place.
        device: "cpu", "cuda", "cuda:N" or None (CUDA when available).
        channels_last: store 4-D weights as NHWC; None means on for CUDA (tensor-core friendly),
            off for CPU.
        compile: wrap with ``torch.compile(dynamic=False)`` (slow first call, one compilation per
            input shape; pays off on GPUs for fixed tile sizes).

    Returns:
        The same module, or its compiled wrapper (attributes such as ``in_channels`` still resolve).
    """
    dev = resolve_device(device)
    if channels_last is None:
        channels_last = dev.type == "cuda"
    model = model.to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if compile:  # the compiled wrapper is an nn.Module (OptimizedModule); torch types the result as a callable
        model = cast(nn.Module, torch.compile(model, dynamic=False))
    return model


def prepare_input(
    x: torch.Tensor, device: str | torch.device | None = None, *, channels_last: bool | None = None
) -> torch.Tensor:
    """(N, C, H, W) `x` on `device`, NHWC in memory when `channels_last` (default: on for CUDA)."""
    dev = resolve_device(device)
    if channels_last is None:
        channels_last = dev.type == "cuda"
    fmt = torch.channels_last if channels_last and x.ndim == 4 else torch.contiguous_format
    return x.to(dev, memory_format=fmt, non_blocking=True)


def autocast(device: str | torch.device | None = None, enabled: bool | None = None) -> torch.autocast:
    """bf16 mixed-precision context for `device`: on by default for CUDA with bf16, on for CPU only when asked.

    Inside it matrix multiplies and convolutions run in bfloat16 and reductions such as the loss in
    float32. bf16 needs no loss scaling (same exponent range as float32).
    """
    dev = resolve_device(device)
    if enabled is None:
        enabled = dev.type == "cuda" and torch.cuda.is_bf16_supported()
    device_type = dev.type if dev.type in ("cuda", "cpu", "xpu", "mps") else "cpu"
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16, enabled=bool(enabled))


@contextlib.contextmanager
def fast_backend() -> Iterator[None]:
    """Within: cuDNN autotuning (``cudnn.benchmark``) and TF32 float32 matmuls and convolutions; restored on exit.

    These are process-wide switches, so they are on only around the code that asked for them (a training
    run, the benchmark's fast path) and PyTorch's settings come back afterwards.
    """
    old_benchmark = torch.backends.cudnn.benchmark
    old_cudnn_tf32 = torch.backends.cudnn.allow_tf32
    old_precision = torch.get_float32_matmul_precision()
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old_benchmark
        torch.backends.cudnn.allow_tf32 = old_cudnn_tf32
        torch.set_float32_matmul_precision(old_precision)


__all__ = [
    "Precision",
    "RuntimeSettings",
    "Switch",
    "autocast",
    "bf16_supported",
    "fast_backend",
    "is_cuda",
    "prepare_input",
    "prepare_model",
    "resolve_device",
    "runtime_settings",
]
