"""Blockwise volume prediction: throughput against in-memory predict_tiled, and peak memory on a big volume.

    python benchmarks/volumes.py                      # throughput: 8 x 2048 x 2048, `small`; in-process, 1 and 2 workers
    python benchmarks/volumes.py --memory             # also: 2 and 12 x 8192 x 8192 (3.2 GB float32 output), small/4 channels
    python benchmarks/volumes.py --memory --no-throughput   # the memory table only
    python benchmarks/volumes.py --smoke              # tiny sizes, to check the script runs
    python benchmarks/volumes.py --out results.json

Throughput is megapixels of output per second of wall time (the cluster runs include starting the cluster).
Peak memory is the largest sum of the resident memory of this process and all its children (the dask
workers), sampled every 0.1 s while a run goes on.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch
import zarr
from rich.console import Console
from rich.table import Table

import unet_zoo
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.inference.tiling import predict_tiled
from unet_zoo.volumes.predict import predict_volume


class PeakRSS:
    """Largest resident memory (bytes) of this process plus all its descendants while the block runs."""

    def __init__(self, interval: float = 0.1):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def synthetic_volume(path: Path, shape: tuple[int, int, int], chunk: int, seed: int = 0) -> zarr.Array:
    """A uint8 (Z, Y, X) Zarr array of cell-like blobs, written chunk by chunk (never whole in memory)."""
    array = zarr.create_array(str(path), shape=shape, chunks=(1, chunk, chunk), dtype="uint8", overwrite=True)
    rng = np.random.default_rng(seed)
    freq = rng.uniform(0.02, 0.06, size=4)
    for z in range(shape[0]):
        for y0 in range(0, shape[1], chunk):
            for x0 in range(0, shape[2], chunk):
                yy, xx = np.ogrid[y0 : min(y0 + chunk, shape[1]), x0 : min(x0 + chunk, shape[2])]
                pattern = np.sin(freq[0] * yy + z) * np.cos(freq[1] * xx) + 0.5 * np.sin(freq[2] * (yy + xx))
                noise = rng.normal(0, 0.1, pattern.shape)
                array[z, y0 : y0 + chunk, x0 : x0 + chunk] = np.clip(127 + 80 * (pattern + noise), 0, 255).astype(np.uint8)
    return array


def throughput(args, workdir: Path) -> list[dict]:
    torch.manual_seed(0)
    # an architecture name gets random weights (a warning)
    model = from_pretrained(args.model, device="cpu", allow_architecture=True)
    shape = (args.sections, args.side, args.side)
    source = synthetic_volume(workdir / "throughput.zarr", shape, min(args.side, 512))
    mpx = np.prod(shape) / 1e6
    rows = []
    start = time.perf_counter()
    reference = np.stack([predict_tiled(model, source[z], tta=args.tta)[1] for z in range(shape[0])])
    seconds = time.perf_counter() - start
    rows.append({"run": "predict_tiled, in memory", "seconds": seconds, "mpx_per_s": mpx / seconds, "max_abs_diff": 0.0})
    for workers in (None, 1, 2):
        out = workdir / f"throughput-{workers}.zarr"
        with PeakRSS() as peak:
            start = time.perf_counter()
            predict_volume(model, workdir / "throughput.zarr", out, tta=args.tta, block=args.block, workers=workers)
            seconds = time.perf_counter() - start
        diff = float(np.abs(zarr.open(str(out), mode="r")[:] - reference).max())
        rows.append(
            {
                "run": "predict_volume, this process" if workers is None else f"predict_volume, {workers} worker process(es)",
                "seconds": seconds,
                "mpx_per_s": mpx / seconds,
                "max_abs_diff": diff,
                "peak_rss_mb": peak.peak / 2**20,
            }
        )
        shutil.rmtree(out)
    base = rows[0]["seconds"]
    for row in rows:
        row["time_vs_in_memory"] = row["seconds"] / base
    return rows


def memory_bound(args, workdir: Path) -> list[dict]:
    """Peak memory of predict_volume on a small and a large volume of the same section size: a bound that
    holds whatever the volume size shows as the same peak for both."""
    torch.manual_seed(0)
    model = unet_zoo.create_model("small", base_channels=4).eval()
    rows = []
    for sections in (args.memory_small_sections, args.memory_sections):
        shape = (sections, args.memory_side, args.memory_side)
        source = workdir / f"big-{sections}.zarr"
        synthetic_volume(source, shape, min(args.memory_side, 1024))
        for workers in (None, 2):
            out = workdir / "big-out.zarr"
            with PeakRSS() as peak:
                start = time.perf_counter()
                predict_volume(model, source, out, block=args.memory_block, workers=workers, memory_limit=args.memory_limit)
                seconds = time.perf_counter() - start
            rows.append(
                {
                    "run": "this process" if workers is None else f"{workers} worker processes",
                    "volume": "x".join(map(str, shape)),
                    "output_gb_float32": np.prod(shape) * 4 / 1e9,
                    "block": args.memory_block,
                    "seconds": seconds,
                    "mpx_per_s": np.prod(shape) / 1e6 / seconds,
                    "peak_rss_mb": peak.peak / 2**20,
                }
            )
            shutil.rmtree(out)
        shutil.rmtree(source)
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small", help="architecture (random weights) or checkpoint, e.g. isbi-small")
    parser.add_argument("--sections", type=int, default=8)
    parser.add_argument("--side", type=int, default=2048, help="section height and width in pixels")
    parser.add_argument("--block", type=int, default=None, help="predict_volume block side (default: its own)")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--memory", action="store_true", help="also run the memory-bound volume")
    parser.add_argument("--no-throughput", action="store_true", help="skip the throughput table (with --memory)")
    parser.add_argument("--memory-sections", type=int, default=12)
    parser.add_argument("--memory-small-sections", type=int, default=2, help="the small volume the large one is set beside")
    parser.add_argument("--memory-side", type=int, default=8192)
    parser.add_argument("--memory-block", type=int, default=1024)
    parser.add_argument("--memory-limit", default="1GiB", help="per-worker limit of the local cluster")
    parser.add_argument("--workdir", type=Path, default=None, help="where the volumes go (default: a temp folder)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: 2 x 256 x 256, memory run 2 x 1024 x 1024")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sections, args.side, args.memory_sections, args.memory_side, args.memory_block = 2, 256, 2, 1024, 512
        args.memory_small_sections = 1
    workdir = Path(tempfile.mkdtemp(prefix="unet_zoo-volumes-", dir=args.workdir))
    console = Console()
    result = {
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "model": args.model,
        "tta": args.tta,
        # a python process with torch, zarr and unet_zoo imported, before any run: every dask worker pays it too
        "idle_rss_mb": psutil.Process().memory_info().rss / 2**20,
    }
    try:
        result["throughput"] = [] if args.no_throughput else throughput(args, workdir)
        table = Table(title=f"{args.sections} x {args.side} x {args.side}, {args.model}{' + TTA' if args.tta else ''}")
        for col in ("run", "s", "Mpx/s", "time vs in memory", "max |diff|", "peak RSS MB"):
            table.add_column(col, justify="left" if col == "run" else "right")
        for r in result["throughput"]:
            table.add_row(
                r["run"],
                f"{r['seconds']:.1f}",
                f"{r['mpx_per_s']:.3f}",
                f"{r['time_vs_in_memory']:.2f}x",
                f"{r['max_abs_diff']:.1e}",
                f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-",
            )
        if result["throughput"]:
            console.print(table)
        if args.memory:
            result["memory"] = memory_bound(args, workdir)
            table = Table(title=f"memory bound: small, 4 base channels (idle RSS of one process: {result['idle_rss_mb']:.0f} MB)")
            for col in ("run", "volume", "output GB (float32)", "block", "s", "Mpx/s", "peak RSS MB (all processes)"):
                table.add_column(col, justify="left" if col == "run" else "right")
            for r in result["memory"]:
                table.add_row(
                    r["run"],
                    r["volume"],
                    f"{r['output_gb_float32']:.2f}",
                    str(r["block"]),
                    f"{r['seconds']:.0f}",
                    f"{r['mpx_per_s']:.2f}",
                    f"{r['peak_rss_mb']:.0f}",
                )
            console.print(table)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.out:
        from unet_zoo.utils.files import atomic_write_bytes

        atomic_write_bytes(args.out, json.dumps(result, indent=2, default=float))
    return result


if __name__ == "__main__":
    main()
