"""CPU precision: float32 eager, bf16 autocast, onnxruntime (and OpenVINO) against the machine's limit.

In one process: the CPU model and its bf16 units, the measured float32 and bf16 matrix-multiply rates (the
limit), then one forward pass of a (1, 1, side, side) input and one training step of (batch, 1, tile, tile)
tiles per path. Each path is reported as seconds (median of `repeats` calls after one warm-up) and as the
fraction of the limit of its precision: float32 paths against the fp32 matmul rate, bf16 paths against the
bf16 one (FLOPs counted with ``torch.utils.flop_counter``, multiply + add = 2).

OpenVINO is measured when installed (``pip install "unet-zoo[openvino]"``), in float32 and with its own default
precision hint (bf16 on CPUs with AMX). `bench_cpu_precision` is the ``precision`` section of the suite
(`unet_zoo.benchmark.run_all`) and the body of ``benchmarks/cpu_precision.py``.
"""

from __future__ import annotations

import functools
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.benchmark._common import Log, _overrides, _quiet, ratio, smallest_tile
from unet_zoo.exporters.sessions import onnxruntime_available, onnxruntime_forward
from unet_zoo.exporters.traced import onnx_bytes
from unet_zoo.models.registry import create_model
from unet_zoo.training.signals import keep_signal_stack
from unet_zoo.training.step import train_step
from unet_zoo.utils.runtime import autocast, cpu_bf16_hardware, prepare_input, prepare_model, runtime_settings
from unet_zoo.utils.timing import Timer, count_forward_flops, count_train_flops, matmul_tflops

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx512_vnni")
"""The /proc/cpuinfo flags the report lists: the vector and matrix units that decide float32 and bf16 speed."""
FP32_EAGER, BF16_AUTOCAST = "torch fp32 eager", "torch bf16 autocast, channels_last"
ONNXRUNTIME, OPENVINO_FP32, OPENVINO_DEFAULT = "onnxruntime fp32", "openvino fp32", "openvino default hint"
SMOKE_SIDE = 32  # smoke inference input side, px (the `small` architecture takes multiples of 16)


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) of the first processor in /proc/cpuinfo; ("unknown", empty) off Linux."""
    name, flags = "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "unknown":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return name, flags


def openvino_available() -> bool:
    """Whether the optional ``openvino`` package is installed."""
    return importlib.util.find_spec("openvino") is not None


def auto_paths() -> dict[str, str]:
    """The paths ``--precision auto`` takes on this CPU: {"inference": path name, "training": path name}.

    bf16 autocast with channels_last where `runtime_settings` picks bf16 (CPUs with AMX); elsewhere float32,
    with onnxruntime for inference when it is installed (as `predict` and `segment` do).
    """
    if runtime_settings("cpu").amp_dtype is not None:
        return {"inference": BF16_AUTOCAST, "training": BF16_AUTOCAST}
    return {"inference": ONNXRUNTIME if onnxruntime_available() else FP32_EAGER, "training": FP32_EAGER}


def cpu_description() -> dict[str, Any]:
    """CPU model name, its listed flags (`CPU_FLAGS`), its bf16 unit ("amx", "avx512_bf16" or None), the
    precision and paths ``--precision auto`` picks here, torch threads and torch version."""
    name, flags = _cpuinfo()
    return {
        "cpu": name,
        "flags": [f for f in CPU_FLAGS if f in flags],
        "bf16_unit": cpu_bf16_hardware(),
        "auto_precision": runtime_settings("cpu").precision,
        "auto_paths": auto_paths(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime_available(),
        "openvino": openvino_available(),
    }


def measure_peak(n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Measured CPU matmul rates in TFLOP/s of n x n products: {"fp32": ..., "bf16": ...}."""
    return {
        "fp32": matmul_tflops("cpu", torch.float32, n=n, repeats=repeats, warmup=1),
        "bf16": matmul_tflops("cpu", torch.bfloat16, n=n, repeats=repeats, warmup=1),
    }


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of `repeats` calls of `fn` after one untimed warm-up call (oneDNN primitive creation,
    the first run of onnxruntime and OpenVINO)."""
    return Timer("cpu", warmup=1, repeats=repeats)(fn).median_s


def openvino_forward(model: nn.Module, precision_hint: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """OpenVINO CPU forward of `model`'s ONNX export: (N, 1, H, W) float32 -> (N, C, H', W') probabilities.

    `precision_hint`: OpenVINO's INFERENCE_PRECISION_HINT ("f32", "bf16"), or None for its default. The
    returned function's ``precision`` attribute is what OpenVINO runs: "bf16" or "fp32".
    Raises ImportError when openvino is not installed.
    """
    import openvino as ov  # optional: only this path needs it

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes(model))
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        # OpenVINO installs its own alternate signal stack on this thread and, when two compiled models are
        # released in the order they were made, leaves a freed one behind: the next signal would then crash
        # the process. Keep the caller's stack (unet_zoo.training.signals explains).
        with keep_signal_stack():
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def forward(tiles: np.ndarray) -> np.ndarray:
        return np.asarray(compiled(np.ascontiguousarray(tiles, dtype=np.float32))[0])

    try:  # what OpenVINO chose (its default is bf16 on CPUs with a bf16 unit, depending on its version)
        used = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        precision = "bf16" if "bf16" in used or "bfloat16" in used else "fp32"
    except Exception:  # noqa: BLE001  an OpenVINO without the property: guess from the hint and the hardware
        precision = "bf16" if precision_hint == "bf16" or (precision_hint is None and cpu_bf16_hardware()) else "fp32"
    forward.precision = precision  # type: ignore[attr-defined]
    return forward


def _row(precision: str, seconds: float, flops: int, peak: dict[str, float]) -> dict[str, Any]:
    tflops = flops / seconds / 1e12
    return {
        "precision": precision,
        "seconds": seconds,
        "flops": flops,
        "tflops": tflops,
        "fraction_of_limit": ratio(tflops, peak.get(precision)),
    }


def inference(
    model_name: str,
    side: int,
    repeats: int,
    peak: dict[str, float],
    overrides: dict[str, Any] | None = None,
    log: Log = _quiet,
) -> dict[str, dict[str, Any]]:
    """One forward pass of a (1, 1, side, side) input per path -> {path: {precision, seconds, flops, tflops,
    fraction_of_limit}}: torch fp32 eager, torch bf16 autocast + channels_last, onnxruntime fp32 (when
    installed), OpenVINO fp32 and default hint (when installed). `peak`: TFLOP/s per precision."""
    overrides = overrides or {}
    torch.manual_seed(0)
    net = create_model(model_name, **overrides).eval()
    flops = count_forward_flops(net, (1, 1, side, side))
    x = torch.rand(1, 1, side, side)
    results: dict[str, dict[str, Any]] = {}

    def record(path: str, precision: str, fn: Callable[[], Any]) -> None:
        log(f"[precision] inference: {path}")
        results[path] = _row(precision, median_seconds(fn, repeats), flops, peak)

    with torch.inference_mode():
        record(FP32_EAGER, "fp32", lambda: net(x))
        bf16 = prepare_model(create_model(model_name, **overrides).eval(), "cpu", channels_last=True)
        xc = prepare_input(x, "cpu", channels_last=True)

        def run_bf16() -> None:
            with autocast("cpu", enabled=True):
                bf16(xc)

        record(BF16_AUTOCAST, "bf16", run_bf16)
    tiles = x.numpy()
    if onnxruntime_available():
        ort = onnxruntime_forward(net)
        record(ONNXRUNTIME, "fp32", lambda: ort(tiles))
    if openvino_available():
        for path, hint in ((OPENVINO_FP32, "f32"), (OPENVINO_DEFAULT, None)):  # default: OpenVINO's own choice
            try:
                ov_forward = openvino_forward(net, hint)
            except Exception as err:  # noqa: BLE001  a broken OpenVINO install must not lose the other paths
                log(f"[precision] {path} failed: {type(err).__name__}: {err}")
                continue
            record(path, ov_forward.precision, functools.partial(ov_forward, tiles))  # type: ignore[attr-defined]
    return results


def training(
    model_name: str,
    tile: int,
    batch: int,
    repeats: int,
    peak: dict[str, float],
    overrides: dict[str, Any] | None = None,
    log: Log = _quiet,
) -> dict[str, dict[str, Any]]:
    """One training step (`unet_zoo.training.step.train_step`: forward, weighted loss, backward, SGD with
    momentum 0.99) on (batch, 1, tile, tile) tiles, torch fp32 eager and torch bf16 autocast + channels_last
    -> {path: {precision, seconds, flops, tflops, fraction_of_limit}}. `peak`: TFLOP/s per precision."""
    overrides = overrides or {}
    results: dict[str, dict[str, Any]] = {}
    for precision, path in (("fp32", FP32_EAGER), ("bf16", BF16_AUTOCAST)):
        log(f"[precision] training step: {path}")
        torch.manual_seed(0)
        settings = runtime_settings("cpu", precision)
        model = create_model(model_name, **overrides)
        net = prepare_model(model, "cpu", channels_last=settings.channels_last).train()
        flops = count_train_flops(net, (batch, 1, tile, tile))
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)
        x = prepare_input(torch.rand(batch, 1, tile, tile), "cpu", channels_last=settings.channels_last)
        out = int(model.output_size(tile))
        target = torch.randint(0, 2, (batch, out, out))
        weight = torch.ones(batch, out, out)
        amp = settings.amp_dtype is not None
        step = functools.partial(train_step, net, optimizer, x, target, weight, torch.device("cpu"), amp=amp)
        results[path] = _row(precision, median_seconds(step, repeats), flops, peak)
    return results


def bench_cpu_precision(
    model_name: str = "small",
    side: int = 512,
    tile: int | None = 256,
    batch: int = 4,
    repeats: int = 5,
    smoke: bool = False,
    peak: dict[str, float] | None = None,
    matmul_n: int = 2048,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Inference and training-step time of each CPU precision path, as seconds and as a fraction of its limit.

    Args:
        model_name: architecture (random weights: speed does not depend on them).
        side: inference input side in pixels: one (1, 1, side, side) forward pass per path.
        tile, batch: training input side in pixels (None: the smallest usable one) and tiles per step:
            (batch, 1, tile, tile).
        repeats: timed calls per path (after one warm-up); the median is reported.
        smoke: tiny sizes (8 base channels, a 32 px input, the smallest tile, batch 1, one repeat); checks the
            code runs, the timings mean nothing.
        peak: measured matmul rates in TFLOP/s, {"fp32": ..., "bf16": ...} (the suite passes its own);
            None measures them here with n x n products, n = `matmul_n` (64 in smoke mode).
        log: progress messages.

    Returns:
        {"benchmark", "smoke", "model", "model_overrides", "side", "tile", "batch", "repeats", "environment"
        (`cpu_description`), "peak_tflops", "matmul_n" (None when `peak` was given), "inference" and
        "training": {path: {"precision", "seconds", "flops", "tflops", "fraction_of_limit"}}}.
    """
    overrides = _overrides(model_name, smoke)
    if smoke:
        side, tile, batch, repeats = SMOKE_SIDE, None, 1, 1
    if tile is None:
        tile = smallest_tile(create_model(model_name, **overrides))
    n = None
    if peak is None:
        n = 64 if smoke else matmul_n
        log(f"[precision] measuring the CPU matmul rates (n={n})")
        peak = measure_peak(n, repeats=repeats)
    missing = {"fp32", "bf16"} - set(peak)
    if missing:
        raise ValueError(f"peak needs fp32 and bf16 TFLOP/s; missing {', '.join(sorted(missing))}")
    return {
        "benchmark": "cpu_precision",
        "smoke": smoke,
        "model": model_name,
        "model_overrides": overrides,
        "side": side,
        "tile": tile,
        "batch": batch,
        "repeats": repeats,
        "environment": cpu_description(),
        "peak_tflops": dict(peak),
        "matmul_n": n,
        "inference": inference(model_name, side, repeats, peak, overrides, log),
        "training": training(model_name, tile, batch, repeats, peak, overrides, log),
    }


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.3g}%"


def cpu_line(env: dict[str, Any]) -> str:
    """One line: the CPU, its listed flags, its bf16 unit and what ``--precision auto`` picks on it."""
    auto = env.get("auto_paths") or {}
    missing = [name for name in ("onnxruntime", "openvino") if env.get(name) is False]
    return (
        f"CPU: {env['cpu']} ({env['threads']} threads), flags: {', '.join(env['flags']) or 'none'}; "
        f"bf16 unit: {env['bf16_unit'] or 'none (bf16 emulated)'}; `--precision auto` picks {env['auto_precision']}: "
        f"inference {auto.get('inference', '-')}, training {auto.get('training', '-')}; torch {env['torch']}"
        + (f"; not installed, so not measured: {', '.join(missing)}" if missing else "")
    )


def precision_table(result: dict[str, Any]) -> list[str]:
    """Markdown table lines of a `bench_cpu_precision` result: one row per section and path, with seconds,
    TFLOP/s and the fraction of the matmul rate of the path's precision; the paths `auto` picks are marked."""
    auto = result["environment"].get("auto_paths") or {}
    lines = [
        "| section | path | precision | seconds | TFLOP/s | of its limit |",
        "|---|---|---|---:|---:|---:|",
    ]
    for section, label in (("inference", "inference"), ("training", "training step")):
        for path, row in result[section].items():
            mark = " (auto)" if auto.get(section) == path else ""
            lines.append(
                f"| {label} | {path}{mark} | {row['precision']} | {row['seconds']:.3g} | {row['tflops']:.3g} | "
                f"{_percent(row['fraction_of_limit'])} |"
            )
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The stand-alone report of a `bench_cpu_precision` result: the CPU line, the limit and the table."""
    peak = result["peak_tflops"]
    n = f"n={result['matmul_n']}" if result.get("matmul_n") else "given"
    return "\n".join(
        [
            cpu_line(result["environment"]),
            f"Limit (measured matmul, {n}): fp32 {peak['fp32']:.3g} TFLOP/s, bf16 {peak['bf16']:.3g} TFLOP/s",
            "",
            *precision_table(result),
        ]
    )


__all__ = [
    "BF16_AUTOCAST",
    "CPU_FLAGS",
    "FP32_EAGER",
    "ONNXRUNTIME",
    "OPENVINO_DEFAULT",
    "OPENVINO_FP32",
    "auto_paths",
    "bench_cpu_precision",
    "cpu_description",
    "cpu_line",
    "inference",
    "markdown",
    "measure_peak",
    "median_seconds",
    "openvino_available",
    "openvino_forward",
    "precision_table",
    "training",
]
