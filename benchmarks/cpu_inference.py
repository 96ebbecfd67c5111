"""CPU inference backends side by side, in one process: seconds per 512x512 slice and per 2048x2048 image.

    python benchmarks/cpu_inference.py --model isbi-small --repeats 5 --out cpu_inference.json
    python benchmarks/cpu_inference.py --model original --threads 2
    python benchmarks/cpu_inference.py --smoke            # tiny sizes and model: checks that it runs

Each backend runs the same overlap-tile prediction (`predict_tiled`, inside `unet_zoo.Predictor`, no TTA, the default tile):
torch eager float32 (the default path), torch.compile on the CPU, onnxruntime, and OpenVINO when it is
importable (skipped otherwise). Reported: the median of --repeats timed runs after one warm-up run (the
warm-up includes compilation/export, reported separately as setup seconds) and the largest difference of
the probabilities from torch eager. Prints a Markdown table; --out writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

import unet_zoo
from unet_zoo.exporters.traced import onnx_bytes, probabilities_module
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.inference.tiling import choose_tile, predict_tiled
from unet_zoo.utils.files import atomic_write_bytes

Forward = Callable[[np.ndarray], np.ndarray]


def torch_compile_forward(model: torch.nn.Module) -> Forward:
    compiled = torch.compile(probabilities_module(model))

    def forward(tiles: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return compiled(torch.from_numpy(np.ascontiguousarray(tiles))).numpy()

    return forward


def onnxruntime_backend(model: torch.nn.Module) -> Forward:
    from unet_zoo.exporters.sessions import onnxruntime_forward

    return onnxruntime_forward(model)


def openvino_forward(model: torch.nn.Module) -> Forward:
    import openvino as ov  # optional: only this backend needs it

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes(model))
        core = ov.Core()
        # float32 like the others (CPUs with bf16 units default to bf16), on torch's thread count
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def forward(tiles: np.ndarray) -> np.ndarray:
        return np.asarray(compiled(np.ascontiguousarray(tiles, dtype=np.float32))[0])

    return forward


def backends(only: list[str] | None) -> dict[str, Callable[[torch.nn.Module], Forward | None] | None]:
    """Name -> factory of the `forward` for predict_tiled (None: torch eager); OpenVINO only if importable."""
    table: dict[str, Callable[[torch.nn.Module], Forward | None] | None] = {
        "torch eager": lambda model: None,
        "torch.compile": torch_compile_forward,
        "onnxruntime": onnxruntime_backend,
    }
    try:
        import openvino  # noqa: F401
    except ImportError:
        table["openvino"] = None  # reported as skipped
    else:
        table["openvino"] = openvino_forward
    return {k: v for k, v in table.items() if not only or k in only}


def test_image(size: int) -> np.ndarray:
    """A (size, size) uint8 image: ISBI 2012 slices tiled side by side when on this machine, else noise."""
    try:
        from unet_zoo.experiments.isbi2012.data import find_data_dir, read_stack

        stack = read_stack(find_data_dir() / "train-volume.tif")
        reps = -(-size // stack.shape[-1])
        rows = [np.concatenate(list(stack[(r * reps) % 30 : (r * reps) % 30 + reps]), axis=1) for r in range(reps)]
        return np.ascontiguousarray(np.concatenate(rows, axis=0)[:size, :size])
    except Exception:  # noqa: BLE001  no data here: timing does not depend on the pixel values
        return np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)


def run(model: torch.nn.Module, sizes: list[int], repeats: int, only: list[str] | None, batch_size: int) -> dict:
    model = model.to("cpu", torch.float32).eval()
    images = {size: test_image(size) for size in sizes}
    rows, reference = [], {}
    for name, factory in backends(only).items():
        if factory is None:
            rows.append({"backend": name, "skipped": "not importable (pip install openvino)"})
            continue
        start = time.perf_counter()
        try:
            forward = factory(model)
        except Exception as err:  # noqa: BLE001  report the backend as failed, keep measuring the others
            rows.append({"backend": name, "skipped": f"{type(err).__name__}: {err}"[:300]})
            continue
        setup = time.perf_counter() - start
        for size, image in images.items():
            start = time.perf_counter()
            probs = predict_tiled(model, image, batch_size=batch_size, forward=forward)  # warm-up
            warmup = time.perf_counter() - start
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                predict_tiled(model, image, batch_size=batch_size, forward=forward)
                times.append(time.perf_counter() - start)
            reference.setdefault(size, probs)
            rows.append(
                {
                    "backend": name,
                    "size": size,
                    "tile": choose_tile(model, size, size),
                    "seconds": statistics.median(times),
                    "times": times,
                    "warmup_seconds": warmup,
                    "setup_seconds": setup,
                    "max_abs_diff_vs_torch_eager": float(np.abs(probs - reference[size]).max()),
                }
            )
    return {
        "rows": rows,
        "repeats": repeats,
        "batch_size": batch_size,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def markdown(result: dict, model: str) -> str:
    sizes = sorted({r["size"] for r in result["rows"] if "size" in r})
    head = "| backend | " + " | ".join(f"s per {s}x{s}" for s in sizes) + " | max diff vs eager |"
    lines = [
        f"{model}, {result['torch_threads']} threads, median of {result['repeats']}, no TTA",
        "",
        head,
        "|" + "---|" * (len(sizes) + 2),
    ]
    for backend in dict.fromkeys(r["backend"] for r in result["rows"]):
        rows = [r for r in result["rows"] if r["backend"] == backend]
        if "skipped" in rows[0]:
            lines.append(f"| {backend} | " + " | ".join("skipped" for _ in sizes) + f" | {rows[0]['skipped']} |")
            continue
        by_size = {r["size"]: r for r in rows}
        cells = [f"{by_size[s]['seconds']:.3f} (tile {by_size[s]['tile']})" for s in sizes]
        lines.append(f"| {backend} | " + " | ".join(cells) + f" | {max(r['max_abs_diff_vs_torch_eager'] for r in rows):.1e} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="checkpoint name, folder, Hub id or architecture")
    parser.add_argument("--base-channels", type=int, default=None, help="architecture names only: override the width")
    parser.add_argument("--sizes", default="512,2048", help="image sides in pixels, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward pass")
    parser.add_argument("--backends", default="", help="comma-separated subset, e.g. 'torch eager,onnxruntime'")
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime CPU threads")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and model: 1 repeat of 64 and 96 px")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.smoke:
        args.sizes, args.repeats, args.base_channels = "64,96", 1, args.base_channels or 4
    if args.base_channels:
        model = unet_zoo.create_model(args.model, base_channels=args.base_channels)
    else:
        model = from_pretrained(args.model, device="cpu", allow_architecture=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    result = run(model, sizes, args.repeats, [b.strip() for b in args.backends.split(",") if b.strip()], args.batch_size)
    result["model"] = args.model + (f" (base_channels={args.base_channels})" if args.base_channels else "")
    print(markdown(result, result["model"]))
    if args.out:
        atomic_write_bytes(args.out, json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
