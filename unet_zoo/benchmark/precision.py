"""CPU precision: float32 eager, bf16 autocast, onnxruntime (and OpenVINO) against the machine's limit.

In one process: the CPU model and its bf16 units, the measured float32 and bf16 matrix-multiply rates (the
limit), then one forward pass of a (1, 1, side, side) input and one training step of (batch, 1, tile, tile)
tiles per path. Each path is reported as seconds (median of `repeats` calls after one warm-up) and as the
fraction of the limit of its precision: float32 paths against the fp32 matmul rate, bf16 paths against the
bf16 one (FLOPs counted with ``torch.utils.flop_counter``, multiply + add = 2).

The paths are those `unet_zoo.exporters.paths.choose_inference_path` chooses among (torch-fp32, torch-bf16, onnxruntime-fp32,
openvino-f32, openvino-bf16; the exported ones when installed). The section also measures again what "auto"
picks on this CPU (`choose_inference_path` and `choose_training_precision` with ``refresh``, which rewrites the
runtime cache) and shows it beside what was cached before, and times the chosen paths with 1 thread and with
every available core (`unet_zoo.runtime.settings.thread_count`). `bench_cpu_precision` is the ``precision``
section of the suite (`unet_zoo.benchmark.run_all`: ``unet-zoo benchmark --only precision``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.benchmark._common import Log, _overrides, _quiet, ratio, smallest_tile
from unet_zoo.benchmark.slice_time import slice_prediction, slice_table
from unet_zoo.exporters import paths as inference_paths
from unet_zoo.exporters.sessions import onnxruntime_available, onnxruntime_forward, openvino_available, openvino_forward
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import create_model
from unet_zoo.runtime import measured
from unet_zoo.runtime.settings import (
    autocast,
    available_cores,
    cpu_bf16_hardware,
    prepare_input,
    prepare_model,
    runtime_settings,
    thread_count,
)
from unet_zoo.training.precision import choose_training_precision
from unet_zoo.training.step import train_step
from unet_zoo.utils.timing import Timer, count_forward_flops, count_train_flops, matmul_tflops

CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx512_vnni")
"""The /proc/cpuinfo flags the report lists: the vector and matrix units that decide float32 and bf16 speed."""
FP32_EAGER, BF16_AUTOCAST = "torch-fp32", "torch-bf16"  # the path names of unet_zoo.runtime.measured
ONNXRUNTIME, OPENVINO_FP32, OPENVINO_BF16 = "onnxruntime-fp32", "openvino-f32", "openvino-bf16"
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


def cpu_description() -> dict[str, Any]:
    """CPU model name, its listed flags (`CPU_FLAGS`), its bf16 unit ("amx", "avx512_bf16" or None), torch
    threads, the cores this process may use, torch version and which exported backends are installed."""
    name, flags = _cpuinfo()
    return {
        "cpu": name,
        "flags": [f for f in CPU_FLAGS if f in flags],
        "bf16_unit": cpu_bf16_hardware(),
        "threads": torch.get_num_threads(),
        "available_cores": available_cores(),
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
    installed), OpenVINO f32 and bf16 (when installed). `peak`: TFLOP/s per precision."""
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
        for path, hint in ((OPENVINO_FP32, "f32"), (OPENVINO_BF16, "bf16")):
            try:
                ov_forward = openvino_forward(net, hint)
            except Exception as err:  # noqa: BLE001  a broken OpenVINO install must not lose the other paths
                log(f"[precision] {path} failed: {type(err).__name__}: {err}")
                continue
            record(path, ov_forward.precision, functools.partial(ov_forward, tiles))
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


def auto_choice(
    model_name: str,
    overrides: dict[str, Any],
    tile: int,
    batch: int,
    refresh: bool = True,
    log: Log = _quiet,
) -> dict[str, dict[str, Any]]:
    """What "auto" picks on this CPU for `model_name`, measured again when `refresh` (which rewrites the runtime
    cache): {"inference": {"path", "how", "previous", "timings_s"}, "training": {"path", "precision", "how",
    "previous", "timings_s"}}; "previous" is what the cache held before (None: nothing)."""
    torch.manual_seed(0)
    net = create_model(model_name, **overrides).eval()
    args = dict(provenance_of(net).args)
    before = measured.cached_inference_entry(net)
    log("[precision] measuring what auto picks for inference")
    choice = inference_paths.choose_inference_path(
        net, "cpu", refresh=refresh, build_forward=False, log=lambda m: log(f"[precision] {m}")
    )
    trained_before = measured.cached_training_entry(model_name, args, tile, batch)
    log("[precision] measuring what auto picks for training")
    step = choose_training_precision(model_name, args, tile, batch, "cpu", refresh=refresh)
    return {
        "inference": {
            "path": choice.path,
            "how": choice.how,
            "previous": before.get("chosen") if before else None,
            "timings_s": choice.record()["timings_s"],
        },
        "training": {
            "path": FP32_EAGER if step.precision == "fp32" else BF16_AUTOCAST,
            "precision": step.precision,
            "how": step.how,
            "previous": trained_before.get("chosen") if trained_before else None,
            "timings_s": dict(step.timings),
        },
    }


def thread_scaling(
    model_name: str,
    overrides: dict[str, Any],
    side: int,
    tile: int,
    batch: int,
    auto: dict[str, dict[str, Any]],
    repeats: int,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Seconds of the paths "auto" picked (`auto`: an `auto_choice` result) with 1 thread and with `thread_count`
    threads: {"threads": [1, N], "inference": {"path", "seconds": {"1": s, "N": s}}, "training": {...}}.
    torch's thread count is restored afterwards."""
    old = torch.get_num_threads()
    counts = sorted({1, thread_count()})
    inference_path, training_precision = auto["inference"]["path"], auto["training"]["precision"]
    result: dict[str, Any] = {
        "threads": counts,
        "inference": {"path": inference_path, "seconds": {}},
        "training": {"path": auto["training"]["path"], "seconds": {}},
    }
    try:
        for n in counts:
            torch.set_num_threads(n)  # exported sessions built below take torch's count
            log(f"[precision] {inference_path} and a {training_precision} training step with {n} thread(s)")
            torch.manual_seed(0)
            net = create_model(model_name, **overrides).eval()
            forward = inference_paths.inference_path_forward(net, inference_path)
            precision = measured.PATH_PRECISION[inference_path]
            settings = runtime_settings("cpu", precision)
            if forward is None:
                model = prepare_model(net, "cpu", channels_last=settings.channels_last)
                x = prepare_input(torch.rand(1, 1, side, side), "cpu", channels_last=settings.channels_last)

                def run(model: nn.Module = model, x: torch.Tensor = x, amp: bool = settings.amp_dtype is not None) -> None:
                    with torch.inference_mode(), autocast("cpu", enabled=amp):
                        model(x)

                seconds = median_seconds(run, repeats)
            else:
                tiles = np.random.default_rng(0).random((1, 1, side, side), dtype=np.float32)
                seconds = median_seconds(functools.partial(forward, tiles), repeats)
            result["inference"]["seconds"][str(n)] = seconds
            result["training"]["seconds"][str(n)] = _training_step_seconds(
                model_name, overrides, tile, batch, training_precision, repeats
            )
    finally:
        torch.set_num_threads(old)
    return result


def _training_step_seconds(
    model_name: str, overrides: dict[str, Any], tile: int, batch: int, precision: str, repeats: int
) -> float:
    """Median seconds of one `train_step` on (batch, 1, tile, tile) random tiles in `precision`."""
    torch.manual_seed(0)
    settings = runtime_settings("cpu", precision)
    model = create_model(model_name, **overrides)
    net = prepare_model(model, "cpu", channels_last=settings.channels_last).train()
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)
    x = prepare_input(torch.rand(batch, 1, tile, tile), "cpu", channels_last=settings.channels_last)
    out = int(model.output_size(tile))
    target = torch.randint(0, 2, (batch, out, out))
    amp = settings.amp_dtype is not None
    return median_seconds(functools.partial(train_step, net, optimizer, x, target, None, torch.device("cpu"), amp=amp), repeats)


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
    refresh: bool = True,
    slice_model: str | None = "isbi-small",
) -> dict[str, Any]:
    """Inference and training-step time of each CPU precision path, as seconds and as a fraction of its limit,
    and one whole slice predicted by `slice_model` the way `unet-zoo predict` does it (`slice_prediction`).

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
        refresh: measure again what "auto" picks and rewrite its runtime cache entries (False: read them).
        slice_model: the checkpoint whose whole-slice prediction (`side` x `side`) is timed on the default path
            against torch float32, without and with TTA (None: skipped; smoke mode: the smoke network, random).

    Returns:
        {"benchmark", "smoke", "model", "model_overrides", "side", "tile", "batch", "repeats", "environment"
        (`cpu_description`), "peak_tflops", "matmul_n" (None when `peak` was given), "inference" and
        "training": {path: {"precision", "seconds", "flops", "tflops", "fraction_of_limit"}}, "auto"
        (`auto_choice`) and "threads" (`thread_scaling`)}.
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
    auto = auto_choice(model_name, overrides, tile, batch, refresh=refresh, log=log)
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
        "auto": auto,
        "threads": thread_scaling(model_name, overrides, side, tile, batch, auto, repeats, log),
        "slice": _slice(create_model(model_name, **overrides) if smoke else slice_model, side, repeats, peak, log),
    }


def _slice(model: str | nn.Module | None, side: int, repeats: int, peak: dict[str, float], log: Log) -> dict[str, Any]:
    """`slice_prediction`, or {"skipped": why} when there is no model or it cannot be loaded here."""
    if model is None:
        return {"skipped": "no slice model given"}
    try:
        return slice_prediction(model, peak, side=side, repeats=repeats, log=log)
    except (OSError, ValueError, KeyError) as err:  # e.g. a checkpoint that is neither cached nor reachable
        log(f"[slice] skipped: {err}")
        return {"skipped": f"{type(err).__name__}: {err}"}


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.3g}%"


def cpu_line(env: dict[str, Any]) -> str:
    """One line: the CPU, its listed flags, its bf16 unit, its threads and what is not installed."""
    missing = [name for name in ("onnxruntime", "openvino") if env.get(name) is False]
    return (
        f"CPU: {env['cpu']} ({env['threads']} threads, {env.get('available_cores', '?')} cores available), flags: "
        f"{', '.join(env['flags']) or 'none'}; bf16 unit: {env['bf16_unit'] or 'none (bf16 emulated)'}; torch {env['torch']}"
        + (f"; not installed, so not measured: {', '.join(missing)}" if missing else "")
    )


def auto_line(auto: dict[str, dict[str, Any]]) -> str:
    """What "auto" picks here and how it was decided, beside what the runtime cache held before."""
    parts = []
    for section in ("inference", "training"):
        row = auto[section]
        before = row.get("previous")
        was = f"; cached before: {before}" if before else "; nothing cached before"
        shown = row["path"] if section == "inference" else f"{row['path']} ({row['precision']})"
        parts.append(f"{section} {shown} ({row['how']}{was})")
    return "`auto` picks " + "; ".join(parts)


def precision_table(result: dict[str, Any]) -> list[str]:
    """Markdown table lines of a `bench_cpu_precision` result: one row per section and path, with seconds,
    TFLOP/s and the fraction of the matmul rate of the path's precision; the paths `auto` picks are marked."""
    auto = result.get("auto") or {}
    lines = [
        "| section | path | precision | seconds | TFLOP/s | of its limit |",
        "|---|---|---|---:|---:|---:|",
    ]
    for section, label in (("inference", "inference"), ("training", "training step")):
        for path, row in result[section].items():
            mark = " (auto)" if (auto.get(section) or {}).get("path") == path else ""
            lines.append(
                f"| {label} | {path}{mark} | {row['precision']} | {row['seconds']:.3g} | {row['tflops']:.3g} | "
                f"{_percent(row['fraction_of_limit'])} |"
            )
    return lines


def threads_table(threads: dict[str, Any]) -> list[str]:
    """Markdown table lines of a `thread_scaling` result: seconds of the auto paths at 1 and N threads."""
    counts = [str(n) for n in threads["threads"]]
    lines = ["| section | path | " + " | ".join(f"{n} thread(s), s" for n in counts) + " |", "|---|---|" + "---:|" * len(counts)]
    for section, label in (("inference", "inference"), ("training", "training step")):
        row = threads[section]
        lines.append(f"| {label} | {row['path']} | " + " | ".join(f"{row['seconds'][n]:.3g}" for n in counts) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """The stand-alone report of a `bench_cpu_precision` result: the CPU line, the limit, the table, what auto
    picks and the thread scaling."""
    peak = result["peak_tflops"]
    n = f"n={result['matmul_n']}" if result.get("matmul_n") else "given"
    return "\n".join(
        [
            cpu_line(result["environment"]),
            f"Limit (measured matmul, {n}): fp32 {peak['fp32']:.3g} TFLOP/s, bf16 {peak['bf16']:.3g} TFLOP/s",
            auto_line(result["auto"]),
            "",
            *precision_table(result),
            "",
            *threads_table(result["threads"]),
            *slice_lines(result.get("slice")),
        ]
    )


def slice_lines(result: dict[str, Any] | None) -> list[str]:
    """The whole-slice part of the report (empty when the result has none)."""
    if not result:
        return []
    if "skipped" in result:
        return ["", f"Whole-slice prediction: skipped ({result['skipped']})."]
    return [
        "",
        f"One whole {result['side']}x{result['side']} slice predicted by `{result['model']}` as `unet-zoo predict` does it "
        "(median seconds; network seconds: the forward passes alone; floor: their FLOPs at the bf16 matmul rate):",
        "",
        *slice_table(result),
    ]


__all__ = [
    "BF16_AUTOCAST",
    "CPU_FLAGS",
    "FP32_EAGER",
    "ONNXRUNTIME",
    "OPENVINO_BF16",
    "OPENVINO_FP32",
    "auto_choice",
    "auto_line",
    "bench_cpu_precision",
    "cpu_description",
    "cpu_line",
    "inference",
    "markdown",
    "measure_peak",
    "median_seconds",
    "precision_table",
    "slice_lines",
    "thread_scaling",
    "threads_table",
    "training",
]
