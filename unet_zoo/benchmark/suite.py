"""The whole suite: the sections in one process, the environment, results as JSON and Markdown."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from unet_zoo._version import __version__
from unet_zoo.benchmark._common import (
    ALL_SECTIONS,
    CPU_MATMUL_N,
    Log,
    _quiet,
    default_sections,
    ratio,
)
from unet_zoo.benchmark.augmentation import bench_augmentation
from unet_zoo.benchmark.inference import bench_cpu_latency, bench_inference
from unet_zoo.benchmark.precision import (
    auto_line,
    bench_cpu_precision,
    cpu_line,
    precision_table,
    slice_lines,
    threads_table,
)
from unet_zoo.benchmark.train import bench_train_step
from unet_zoo.experiments.isbi2012.timing import bench_reproduce
from unet_zoo.runtime.settings import (
    resolve_device,
)
from unet_zoo.utils.files import atomic_write_bytes
from unet_zoo.utils.timing import matmul_tflops

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
    # precision_*: the CPU precision section (`bench_cpu_precision`): a 512x512 slice, a `small` 4x256x256 step.
    precision = dict(precision_model="small", precision_side=512, precision_tile=256, precision_batch=4, precision_repeats=3)
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
            # what smoke mode runs: 8 base channels, a 32 px input, the smallest tile, batch 1, one repeat
            **{**precision, "precision_side": 32, "precision_tile": None, "precision_batch": 1, "precision_repeats": 1},
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
            **precision,
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
        **precision,
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
    """Run the selected benchmarks (default: train, inference, augment, and precision on a CPU;
    ``reproduce`` only when in `only`) and write results.json + results.md.

    Sections that fail are recorded with their error instead of stopping the suite. `settings`
    override `default_settings` (e.g. ``inference_side=2048``, ``train_batch=16``).
    Returns the results dict (``environment``, ``peak``, one key per section, ``errors``).
    """
    dev = resolve_device(device)
    sections = list(default_sections(dev) if only is None else only)
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
    # the sections that compare achieved TFLOP/s with it (the precision section with the CPU's rates)
    if {"train", "inference"} & set(sections) or ("precision" in sections and dev.type == "cpu"):
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
    if "precision" in sections:
        suite_peak = results.get("peak") if dev.type == "cpu" else None  # on a GPU run it measures the CPU itself
        cpu_peak = {"fp32": suite_peak["fp32_matmul_tflops"], "bf16": suite_peak["bf16_matmul_tflops"]} if suite_peak else None
        results["precision"] = guarded(
            "precision",
            lambda: bench_cpu_precision(
                cfg["precision_model"],
                side=cfg["precision_side"],
                tile=cfg["precision_tile"],
                batch=cfg["precision_batch"],
                repeats=cfg["precision_repeats"],
                smoke=smoke,
                peak=cpu_peak,
                matmul_n=CPU_MATMUL_N,
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


RESULT_FILES = ("results.json", "results.md")
"""The files `write_results` writes into its folder."""


def write_results(results: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write `results` to out_dir/results.json and out_dir/results.md (atomically); return both paths."""
    out = Path(out_dir)
    json_path, md_path = (out / name for name in RESULT_FILES)
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
    precision = results.get("precision")
    if precision:
        limit = (
            f"the CPU's measured matmul rates (n={precision['matmul_n']})"
            if precision.get("matmul_n")
            else "the matmul rates above"
        )
        lines += [
            "",
            f"## Precision on the CPU: `{precision['model']}`, inference of one {precision['side']}x{precision['side']} "
            f"input, a training step on {precision['batch']} tile(s) of {precision['tile']}x{precision['tile']}",
            "",
            cpu_line(precision["environment"]),
            "",
            f"Of its limit: fp32 paths against the fp32 rate ({_fmt(precision['peak_tflops']['fp32'])} TFLOP/s), "
            f"bf16 paths against the bf16 rate ({_fmt(precision['peak_tflops']['bf16'])} TFLOP/s), {limit}; "
            f"seconds: median of {precision['repeats']} after one warm-up; (auto): the path `auto` picks here, "
            "measured again by this run (the runtime cache is rewritten).",
            "",
            auto_line(precision["auto"]),
            "",
            *precision_table(precision),
            "",
            "The paths `auto` picked, with 1 thread and with every available core:",
            "",
            *threads_table(precision["threads"]),
            *slice_lines(precision.get("slice")),
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
