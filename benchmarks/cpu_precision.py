"""CPU precision benchmark: fp32 eager, bf16 autocast and onnxruntime (and OpenVINO) against the machine's limit.

In one process: the CPU model and its bf16 units, the measured fp32 and bf16 matrix-multiply rates (the
limit), then one forward pass of a (1, 1, side, side) input and one training step of (batch, 1, tile, tile)
tiles per path, each as seconds and as the fraction of the limit of its precision (FLOPs counted with
`torch.utils.flop_counter`)::

    python benchmarks/cpu_precision.py --model small --side 512 --tile 256 --batch 4 --json cpu-precision.json

OpenVINO is measured when installed (``pip install "unet-zoo[openvino]"``), in float32 and with its bf16 hint.
The run also measures again what ``auto`` picks here (rewriting the runtime cache) and times the picked paths
with 1 thread and with every available core. Timings are medians of --repeats calls after one warm-up.
The measurement is `unet_zoo.benchmark.precision.bench_cpu_precision`, also the ``precision`` section of
``unet-zoo benchmark --device cpu``; this script is its command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unet_zoo.benchmark.precision import bench_cpu_precision, markdown


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
    result = bench_cpu_precision(args.model, args.side, args.tile, args.batch, args.repeats, matmul_n=args.matmul_n)
    result["settings"] = {k: v for k, v in vars(args).items() if k != "json"}
    print(markdown(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
