"""Benchmarks: our fast path against a plain float32 baseline, in the same process, as ratios.

Every benchmark runs OUR path (bf16 autocast, channels_last, optional torch.compile, cuDNN autotuning;
see `unet_zoo.runtime.settings`) and the BASELINE (the same network built by `create_model`, float32,
eager, NCHW, PyTorch's default settings -- how most tutorials write it) one after the other and
reports both measurements and their ratio, because absolute times vary between machines and runs.

Achieved TFLOP/s uses FLOPs counted by ``torch.utils.flop_counter`` (multiply + add = 2) divided by
the median measured time, and is also given as a fraction of the bf16 matrix-multiply rate measured
on the same device in the same run (`unet_zoo.utils.timing.matmul_tflops`).

``smoke=True`` shrinks everything (8 base channels, the smallest tiles, one step) so the whole suite
runs in seconds on a CPU; its timings mean nothing and no test asserts on them.

Modules: `_common` (targets, switches, helpers), `train`, `inference`, `augmentation`, `precision` (the
CPU's float32, bf16, onnxruntime and OpenVINO paths against its measured matmul rates) and `suite`
(`run_all`, results as JSON and Markdown); the ``reproduce`` section times the ISBI 2012 experiment
(`unet_zoo.experiments.isbi2012.timing`); one timer and one FLOP counter come from
`unet_zoo.utils.timing`.
"""

from __future__ import annotations

from unet_zoo.benchmark._common import (
    ALL_SECTIONS,
    CPU_SECTIONS,
    SECTIONS,
    TARGET_AUGMENT_RATIO,
    TARGET_FRACTION,
    TARGET_SPEEDUP,
    default_sections,
    ratio,
    smallest_tile,
)
from unet_zoo.benchmark.augmentation import augmentation_tiles_per_s, bench_augmentation, benchmark_augmentation
from unet_zoo.benchmark.inference import bench_cpu_latency, bench_inference
from unet_zoo.benchmark.precision import bench_cpu_precision
from unet_zoo.benchmark.suite import environment, run_all, to_markdown, write_results
from unet_zoo.benchmark.train import bench_train_step
from unet_zoo.experiments.isbi2012.timing import bench_reproduce

__all__ = [
    "ALL_SECTIONS",
    "CPU_SECTIONS",
    "SECTIONS",
    "TARGET_AUGMENT_RATIO",
    "TARGET_FRACTION",
    "TARGET_SPEEDUP",
    "augmentation_tiles_per_s",
    "bench_augmentation",
    "bench_cpu_latency",
    "bench_cpu_precision",
    "bench_inference",
    "bench_reproduce",
    "bench_train_step",
    "benchmark_augmentation",
    "default_sections",
    "environment",
    "ratio",
    "run_all",
    "smallest_tile",
    "to_markdown",
    "write_results",
]
