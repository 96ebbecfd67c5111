"""Honest timing and FLOP counts: `Timer`, `matmul_tflops`, `count_forward_flops` / `count_train_flops`, `profile_table`.

`matmul_tflops` measures the bf16 matrix-multiply rate of this device (the "hardware limit" the
benchmarks compare against), `count_train_flops` counts the FLOPs of a forward + backward pass with
`torch.utils.flop_counter`, and `Timer` times a callable with warm-up, CUDA events and the median.
FLOPs count a multiply and an add as two operations; TFLOP/s means 1e12 such operations per second.
How a model is set up to run fast (bf16, channels_last, compile) is decided in `unet_zoo.runtime.settings`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from unet_zoo.utils.device import resolve_device


def synchronize(device: str | torch.device | None = None) -> None:
    """Wait for queued work on `device` (a no-op on CPU)."""
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


@dataclass(frozen=True)
class Timing:
    """Seconds per call of each timed repeat (after warm-up) and their summary statistics."""

    times_s: tuple[float, ...]
    warmup: int

    @property
    def median_s(self) -> float:
        """Median seconds per call (robust to the odd slow repeat)."""
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def max_s(self) -> float:
        return max(self.times_s)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary: median/min/max seconds, repeats, warm-up and every time."""
        return {
            "median_s": self.median_s,
            "min_s": self.min_s,
            "max_s": self.max_s,
            "repeats": len(self.times_s),
            "warmup": self.warmup,
            "times_s": list(self.times_s),
        }


class Timer:
    """Times a zero-argument callable: `warmup` untimed calls, then `repeats` timed calls.

    On CUDA each call is bracketed by CUDA events on the current stream (GPU time, no host gaps
    between calls hidden); elsewhere by ``time.perf_counter``. Use ``Timer(device)(fn).median_s``.
    """

    def __init__(self, device: str | torch.device | None = None, warmup: int = 2, repeats: int = 5):
        if warmup < 0 or repeats < 1:
            raise ValueError(f"need warmup >= 0 and repeats >= 1, got warmup={warmup}, repeats={repeats}")
        self.device = resolve_device(device)
        self.warmup, self.repeats = warmup, repeats

    def __call__(self, fn: Callable[[], Any]) -> Timing:
        for _ in range(self.warmup):
            fn()
        synchronize(self.device)
        if self.device.type == "cuda":
            events = []
            for _ in range(self.repeats):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events.append((start, end))
            torch.cuda.synchronize(self.device)
            times = tuple(s.elapsed_time(e) / 1e3 for s, e in events)
        else:
            times_list = []
            for _ in range(self.repeats):
                start_t = time.perf_counter()
                fn()
                times_list.append(time.perf_counter() - start_t)
            times = tuple(times_list)
        return Timing(times_s=times, warmup=self.warmup)


def matmul_tflops(
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.bfloat16,
    n: int = 8192,
    repeats: int = 10,
    warmup: int = 3,
) -> float:
    """Measured rate (TFLOP/s, 2*n**3 FLOPs per product) of n x n @ n x n matrix products in `dtype`.

    This is the practical ceiling the benchmarks compare achieved TFLOP/s against. The median of
    `repeats` timed products is used. On a CPU use a smaller `n` (e.g. 2048): n=8192 is 1.1 TFLOP.
    """
    if n < 1:
        raise ValueError(f"matrix side n must be >= 1, got {n}")
    dev = resolve_device(device)
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    b = torch.randn(n, n, device=dev, dtype=torch.float32, generator=gen).to(dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)
    timing = Timer(dev, warmup=warmup, repeats=repeats)(lambda: torch.mm(a, b, out=out))
    return 2 * n**3 / timing.median_s / 1e12


def _unwrap(model: nn.Module) -> nn.Module:
    """The eager module behind a ``torch.compile`` wrapper (or `model` itself)."""
    return getattr(model, "_orig_mod", model)


def _meta_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers of `model` as meta tensors (shapes only, no memory, no copy of data)."""
    state: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        state[name] = torch.empty_like(p, device="meta").requires_grad_(p.requires_grad)
    for name, b in model.named_buffers():
        state[name] = torch.empty_like(b, device="meta")
    return state


def _count(model: nn.Module, input_shape: Sequence[int], backward: bool) -> int:
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C, H, W), got {tuple(input_shape)}")
    model = _unwrap(model)
    x = torch.empty(tuple(input_shape), device="meta")
    with FlopCounterMode(display=False) as counter, torch.set_grad_enabled(backward):
        out = functional_call(model, _meta_state(model), (x,))
        if backward:
            out.float().sum().backward()
    return int(counter.get_total_flops())


def count_forward_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass of `model` on an (N, C, H, W) float input of `input_shape`.

    Counted on the meta device (no compute, no memory); `model` itself is not changed.
    """
    return _count(model, input_shape, backward=False)


def count_train_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward + backward pass (weight and activation gradients) on `input_shape`.

    `input_shape` is (N, C, H, W); the input itself needs no gradient, so the first layer computes
    only its weight gradient. Counted with ``torch.utils.flop_counter`` on the meta device;
    convolutions and matmuls are counted, element-wise work (ReLU, loss, optimiser) is not.
    """
    return _count(model, input_shape, backward=True)


def profile_table(
    fn: Callable[[], Any],
    device: str | torch.device | None = None,
    steps: int = 3,
    warmup: int = 1,
    row_limit: int = 20,
) -> str:
    """Run `fn` `warmup` + `steps` times under ``torch.profiler`` and return the top-ops table (text).

    Sorted by device time on CUDA and by CPU time elsewhere; use it to say what limits a
    benchmark (convolution kernels, memory-bound element-wise ops, host overhead, ...).
    """
    from torch.profiler import ProfilerActivity, profile

    dev = resolve_device(device)
    for _ in range(warmup):
        fn()
    synchronize(dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            fn()
        synchronize(dev)
    sort_by = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=sort_by, row_limit=row_limit)


__all__ = [
    "Timer",
    "Timing",
    "count_forward_flops",
    "count_train_flops",
    "matmul_tflops",
    "profile_table",
    "synchronize",
]
