"""CPU precision benchmark: fp32 eager, bf16 autocast and onnxruntime (and OpenVINO) against the machine's limit.

In one process: the CPU model and its bf16 units, the measured fp32 and bf16 matrix-multiply rates (the
limit), then one forward pass of a (1, 1, side, side) input and one training step of (batch, 1, tile, tile)
tiles per path, each as seconds and as the fraction of the limit of its precision (FLOPs counted with
`torch.utils.flop_counter`)::

    python benchmarks/cpu_precision.py --model small --side 512 --tile 256 --batch 4 --json cpu-precision.json

OpenVINO is measured when installed (``pip install openvino``), both in float32 and with its own default
precision hint (bf16 on CPUs with AMX). Timings are medians of --repeats calls after one warm-up.
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import unet_zoo
from unet_zoo.exporters.sessions import onnxruntime_available, onnxruntime_forward
from unet_zoo.exporters.traced import onnx_bytes
from unet_zoo.training.step import train_step
from unet_zoo.utils.runtime import autocast, cpu_bf16_hardware, prepare_input, prepare_model, runtime_settings
from unet_zoo.utils.timing import count_forward_flops, count_train_flops, matmul_tflops


def cpu_description() -> dict[str, Any]:
    """CPU model name, its bf16 unit, the vector flags that matter here, threads and torch version."""
    name, flags = "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "unknown":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "avx512_vnni")
    return {
        "cpu": name,
        "flags": [f for f in wanted if f in flags],
        "bf16_unit": cpu_bf16_hardware(),
        "auto_precision": runtime_settings("cpu").precision,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation, ORT/OpenVINO first run)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def openvino_forward(model: torch.nn.Module, precision_hint: str | None) -> Callable[[np.ndarray], np.ndarray]:
    import openvino as ov  # optional: only this path needs it

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes(model))
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    return lambda tiles: np.asarray(compiled(np.ascontiguousarray(tiles, dtype=np.float32))[0])


def inference(model_name: str, side: int, repeats: int, peak: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Seconds and fraction of the limit of one forward pass of a (1, 1, side, side) input per path."""
    torch.manual_seed(0)
    net = unet_zoo.create_model(model_name).eval()
    flops = count_forward_flops(net, (1, 1, side, side))
    x = torch.rand(1, 1, side, side)
    results: dict[str, dict[str, Any]] = {}

    def record(path: str, precision: str, seconds: float) -> None:
        results[path] = {
            "precision": precision,
            "seconds": seconds,
            "tflops": flops / seconds / 1e12,
            "fraction_of_limit": flops / seconds / 1e12 / peak[precision],
        }

    with torch.inference_mode():
        record("torch fp32 eager", "fp32", median_seconds(lambda: net(x), repeats))
        bf16 = prepare_model(unet_zoo.create_model(model_name).eval(), "cpu", channels_last=True)
        xc = prepare_input(x, "cpu", channels_last=True)

        def run_bf16() -> None:
            with autocast("cpu", enabled=True):
                bf16(xc)

        record("torch bf16 autocast, channels_last", "bf16", median_seconds(run_bf16, repeats))
    tiles = x.numpy()
    if onnxruntime_available():
        ort = onnxruntime_forward(net)
        record("onnxruntime fp32", "fp32", median_seconds(lambda: ort(tiles), repeats))
    try:
        ov32 = openvino_forward(net, "f32")
        record("openvino fp32", "fp32", median_seconds(lambda: ov32(tiles), repeats))
        ov_default = openvino_forward(net, None)  # OpenVINO's choice: bf16 on CPUs with AMX
        record(
            "openvino default hint",
            "bf16" if cpu_bf16_hardware() else "fp32",
            median_seconds(lambda: ov_default(tiles), repeats),
        )
    except ImportError:
        pass
    return results


def training(model_name: str, tile: int, batch: int, repeats: int, peak: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Seconds and fraction of the limit of one SGD step on (batch, 1, tile, tile) tiles, fp32 and bf16."""
    results: dict[str, dict[str, Any]] = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        settings = runtime_settings("cpu", precision)
        net = prepare_model(unet_zoo.create_model(model_name), "cpu", channels_last=settings.channels_last).train()
        flops = count_train_flops(net, (batch, 1, tile, tile))
        optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.99)
        x = prepare_input(torch.rand(batch, 1, tile, tile), "cpu", channels_last=settings.channels_last)
        out = int(net.output_size(tile))  # type: ignore[operator]  # a zoo model method
        target = torch.randint(0, 2, (batch, out, out))
        weight = torch.ones(batch, out, out)
        amp = settings.amp_dtype is not None
        step = functools.partial(train_step, net, optimizer, x, target, weight, torch.device("cpu"), amp=amp)
        seconds = median_seconds(step, repeats)
        results[f"torch {precision}" + (" autocast, channels_last" if amp else " eager")] = {
            "precision": precision,
            "seconds": seconds,
            "tflops": flops / seconds / 1e12,
            "fraction_of_limit": flops / seconds / 1e12 / peak[precision],
        }
    return results


def markdown(result: dict[str, Any]) -> str:
    env, peak = result["environment"], result["peak_tflops"]
    lines = [
        f"CPU: {env['cpu']} ({env['threads']} threads), flags: {', '.join(env['flags']) or 'none'}; "
        f"bf16 unit: {env['bf16_unit'] or 'none (bf16 emulated)'}; precision auto = {env['auto_precision']}; "
        f"torch {env['torch']}",
        f"Limit (measured matmul, n={result['matmul_n']}): fp32 {peak['fp32']:.3f} TFLOP/s, bf16 {peak['bf16']:.3f} TFLOP/s",
        "",
        "| section | path | precision | seconds | TFLOP/s | of its limit |",
        "|---|---|---|---:|---:|---:|",
    ]
    for section in ("inference", "training"):
        for path, row in result[section].items():
            lines.append(
                f"| {section} | {path} | {row['precision']} | {row['seconds']:.3f} | {row['tflops']:.3f} | "
                f"{row['fraction_of_limit']:.0%} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="architecture (random weights; speed does not depend on them)")
    parser.add_argument("--side", type=int, default=512, help="inference input side (one 512x512 ISBI slice by default)")
    parser.add_argument("--tile", type=int, default=256, help="training tile side")
    parser.add_argument("--batch", type=int, default=4, help="training tiles per step")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--matmul-n", type=int, default=2048, help="side of the matrices of the limit measurement")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    peak = {
        "fp32": matmul_tflops("cpu", torch.float32, n=args.matmul_n, repeats=args.repeats, warmup=1),
        "bf16": matmul_tflops("cpu", torch.bfloat16, n=args.matmul_n, repeats=args.repeats, warmup=1),
    }
    result = {
        "environment": cpu_description(),
        "matmul_n": args.matmul_n,
        "peak_tflops": peak,
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "inference": inference(args.model, args.side, args.repeats, peak),
        "training": training(args.model, args.tile, args.batch, args.repeats, peak),
    }
    print(markdown(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
