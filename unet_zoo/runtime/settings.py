"""Runtime settings: the one place that decides how a model runs fast on a device, and applies it.

`runtime_settings` turns (device, precision, channels_last, compile) into a `RuntimeSettings`: bf16
autocast + channels_last (NHWC) on CUDA GPUs with bf16 support, float32 on the CPU unless asked (on the CPU,
"auto" is decided by measurement: `unet_zoo.exporters.paths`, `unet_zoo.training.precision`), torch.compile when asked. Training,
tiled prediction and the benchmarks apply the settings with `prepare_model`, `prepare_input` and
`autocast`, and run under `fast_backend` (cuDNN autotuning, TF32 matmuls; restored on exit)::

    settings = runtime_settings("cuda")                                    # bf16, channels_last
    model = prepare_model(create_model("original"), "cuda", channels_last=settings.channels_last)
    with fast_backend(), autocast("cuda", enabled=settings.amp_dtype is not None):
        logits = model(prepare_input(x, "cuda", channels_last=settings.channels_last))
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import torch
from torch import nn

from unet_zoo.utils.device import resolve_device

Precision = Literal["auto", "bf16", "fp32"]
Switch = Literal["auto", "on", "off"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")

THREADS_ENV = "UNET_ZOO_THREADS"
"""Environment variable: the number of threads torch, onnxruntime and OpenVINO use (default: `available_cores`)."""


@dataclass(frozen=True)
class RuntimeSettings:
    """How a model runs on its device: autocast dtype (None = float32), channels_last, torch.compile, and
    whether to run under `fast_backend` (cuDNN autotuning, TF32)."""

    amp_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    fast_backend: bool

    @property
    def precision(self) -> Literal["bf16", "fp32"]:
        """What a run records: "bf16" (bf16 autocast) or "fp32"."""
        return "bf16" if self.amp_dtype is not None else "fp32"


def is_cuda(device: str | torch.device | None) -> bool:
    """True when `device` resolves to a CUDA device."""
    return resolve_device(device).type == "cuda"


def _cpuinfo_flags() -> set[str]:
    """The flags of the first processor in /proc/cpuinfo (Linux), or an empty set."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.cache
def cpu_bf16_hardware() -> Literal["amx", "avx512_bf16"] | None:
    """The CPU's native bf16 matrix unit: "amx" (Intel AMX-BF16, Xeon 4th gen and later), "avx512_bf16"
    (AVX512-BF16 dot products: Xeon 3rd gen, AMD Zen 4/5), or None (bf16 would be emulated in float32).

    Asks PyTorch (``torch.cpu.get_capabilities()``, from cpuinfo), or /proc/cpuinfo on older PyTorch.
    Cached: the answer cannot change while the process runs.
    """
    get = getattr(torch.cpu, "get_capabilities", None)
    try:
        caps = {name for name, value in get().items() if value is True} if get is not None else _cpuinfo_flags()
    except Exception:  # noqa: BLE001  cpuinfo failed to read this CPU: say "no bf16 unit", which keeps float32
        caps = _cpuinfo_flags()
    if {"amx_bf16", "amx_tile"} <= caps:
        return "amx"
    if "avx512_bf16" in caps:
        return "avx512_bf16"
    return None


def bf16_supported(device: str | torch.device | None) -> bool:
    """True when bf16 arithmetic is native on `device`: CUDA compute capability >= 8.0, or a CPU with AMX or
    AVX512-BF16 (`cpu_bf16_hardware`). Elsewhere bf16 autocast still runs on the CPU, emulated and slowly."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return dev.type == "cpu" and cpu_bf16_hardware() is not None


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
            A100/H100), float32 elsewhere (on the CPU the entry points decide "auto" by measuring both first:
            `unet_zoo.exporters.paths`, `unet_zoo.training.precision`, and pass "bf16" or "fp32" here); "bf16"
            forces it (ValueError on a GPU without bf16; on the CPU it runs CPU bf16 autocast, emulated and slow
            on CPUs without AVX512-BF16 or AMX); "fp32" never uses it.
        channels_last: "auto" = on for CUDA and for bf16 on the CPU (oneDNN's bf16 kernels want NHWC), off
            elsewhere; "on" / "off" force it.
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
    auto_bf16 = cuda and bf16_ok
    amp = precision == "bf16" or (precision == "auto" and auto_bf16)
    return RuntimeSettings(
        amp_dtype=torch.bfloat16 if amp else None,
        channels_last=channels_last == "on" or (channels_last == "auto" and (cuda or amp)),
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


def cgroup_cpu_limit(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 ``cpu.max``, else v1 ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us``), or None when there is none or it cannot be read."""
    base = Path(root)
    try:
        quota, period = (base / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((base / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((base / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The CPU cores this process may use: the CPUs of its affinity mask (``os.sched_getaffinity``; taskset,
    container cpusets), capped by its cgroup CPU quota rounded down (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        cores = min(cores, max(1, math.floor(limit)))
    return max(1, cores)


def thread_count() -> int:
    """The threads torch, onnxruntime and OpenVINO use: ``$UNET_ZOO_THREADS`` when set, else `available_cores`.

    Raises ValueError naming the variable when it is not a positive whole number."""
    given = os.environ.get(THREADS_ENV, "").strip()
    if not given:
        return available_cores()
    if not given.isdigit() or int(given) < 1:
        raise ValueError(
            f"{THREADS_ENV} must be a positive whole number of threads, got {given!r}; unset it to use every available core"
        )
    return int(given)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Threads for each of `workers` processes sharing `cores` (default: `thread_count`): cores // workers, >= 1."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    return max(1, (cores if cores is not None else thread_count()) // workers)


def use_available_cores(threads: int | None = None) -> int:
    """Set torch's intra-op threads to `threads` (default: `thread_count`) and return it. onnxruntime and
    OpenVINO sessions made afterwards take the same number (`unet_zoo.exporters.sessions`)."""
    n = threads if threads is not None else thread_count()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


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
    "PRECISIONS",
    "THREADS_ENV",
    "Precision",
    "RuntimeSettings",
    "Switch",
    "autocast",
    "available_cores",
    "bf16_supported",
    "cgroup_cpu_limit",
    "cpu_bf16_hardware",
    "fast_backend",
    "is_cuda",
    "prepare_input",
    "prepare_model",
    "resolve_device",
    "runtime_settings",
    "thread_count",
    "threads_per_worker",
    "use_available_cores",
]
