"""Time one batch of augmented training tiles: scipy reference (CPU) vs torch (CPU, and GPU if present).

    python benchmarks/augment.py                       # 8 tiles of 572 x 572, 3 repeats
    python benchmarks/augment.py --train-step original # also one training step of `original` on the GPU
    python benchmarks/augment.py --smoke               # tiny sizes, a few seconds
    python benchmarks/augment.py --out results.json

Prints a table and (with --out) writes the JSON returned by unet_zoo.benchmark.benchmark_augmentation.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from unet_zoo.benchmark import benchmark_augmentation


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tile", type=int, default=572, help="input tile side in pixels")
    parser.add_argument("--device", default=None, help="extra torch device besides the CPU (default: cuda if available)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-step", default=None, help="model name: also time one training step on the extra device")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) scipy reference")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: batch 2, tile 188, 1 repeat")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.smoke:
        args.batch_size, args.tile, args.repeats = 2, 188, 1
    result = benchmark_augmentation(
        args.batch_size, args.tile, args.device, args.repeats, reference=not args.no_reference, train_model=args.train_step
    )
    table = Table(title=f"{args.batch_size} augmented tiles of {args.tile}x{args.tile} (image + label + weight map)")
    for col in ("method", "device", "s / batch", "ms / tile", "speed-up vs scipy"):
        table.add_column(col, justify="left" if col in ("method", "device") else "right")
    for row in result["rows"]:
        speedup = row.get("speedup_vs_reference")
        table.add_row(
            row["method"],
            row["device"],
            f"{row['seconds_per_batch']:.4f}",
            f"{row['ms_per_tile']:.2f}",
            f"{speedup:.1f}x" if speedup else "-",
        )
    console = Console()
    console.print(table)
    console.print(f"torch {result['torch']}, {result['torch_threads']} CPU threads, cpu {result['cpu']}, gpu {result['gpu']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.name}.")
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=2)
        os.replace(tmp, args.out)
    return result


if __name__ == "__main__":
    main()
