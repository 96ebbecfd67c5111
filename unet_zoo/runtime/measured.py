"""What "auto" means for prediction and training: the cache of measured paths and the decisions taken from it.

This module holds what needs nothing above the utilities: the runtime cache (`runtime_cache_file`, keyed by
`machine_key` and `architecture_key`), the records (`PathTiming`, `InferenceChoice`, `TrainingChoice`), the
pure decisions from timings (`fastest_agreeing_path`, `faster_training_precision`), the paths flags allow
(`allowed_inference_paths`) and the forcing by environment variable. The measurements live where they can
run what they time: the torch paths in `unet_zoo.inference.paths`, every path (with onnxruntime and OpenVINO)
in `unet_zoo.exporters.paths` (`choose_inference_path`), training steps in `unet_zoo.training.precision`
(`choose_training_precision`). The paths:

    torch-fp32        torch eager, float32 (the reference)
    torch-bf16        torch bf16 autocast + channels_last (candidate where the CPU has bf16 units, or on a GPU with bf16)
    onnxruntime-fp32  the ONNX export run by onnxruntime (``pip install "unet-zoo[export]"``; CPU)
    openvino-f32      the ONNX export run by OpenVINO in float32 (``pip install "unet-zoo[openvino]"``; CPU)
    openvino-bf16     the same with OpenVINO's bf16 hint (candidate where the CPU has bf16 units)

A cache entry is keyed by the CPU (model name and flags) or GPU, the thread count, the library versions and
the architecture (model name and arguments). ``$UNET_ZOO_INFERENCE_PATH`` and ``$UNET_ZOO_TRAINING_PRECISION``
force a path; ``--backend`` / ``--precision`` narrow the choice. The cache lives in ``$UNET_ZOO_CACHE``
(default ``$XDG_CACHE_HOME/unet_zoo``, i.e. ``~/.cache/unet_zoo``) as ``runtime.json``; an unreadable file is
ignored and rewritten.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from unet_zoo._version import __version__
from unet_zoo.utils.device import resolve_device
from unet_zoo.utils.files import atomic_write_bytes, cache_dir

Forward = Callable[[np.ndarray], np.ndarray]
Log = Callable[[str], None]

INFERENCE_PATHS: tuple[str, ...] = ("torch-fp32", "torch-bf16", "onnxruntime-fp32", "openvino-f32", "openvino-bf16")
"""Every inference path, in the order a tie is broken (the first wins)."""
PATH_BACKEND = {p: p.split("-")[0] for p in INFERENCE_PATHS}
PATH_PRECISION: dict[str, Literal["bf16", "fp32"]] = {p: "bf16" if p.endswith("bf16") else "fp32" for p in INFERENCE_PATHS}
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")
TRAINING_PRECISIONS: tuple[str, ...] = ("fp32", "bf16")

INFERENCE_PATH_ENV = "UNET_ZOO_INFERENCE_PATH"
TRAINING_PRECISION_ENV = "UNET_ZOO_TRAINING_PRECISION"
CACHE_ENV = "UNET_ZOO_CACHE"

AGREEMENT = {"mean": 0.005, "max": 0.25}
"""Largest mean and largest single difference of a probability to torch float32 that a path may show: the
tolerance the project holds bf16 to on real ISBI slices (it keeps held-out scores within 0.002 V_rand)."""
MEASURE_BUDGET_S = 2.5
"""Seconds of timed calls per measurement, shared by the paths (each runs at least once after a warm-up)."""
MEASURE_IMAGE_SIDE = 256
"""Side in pixels of the image a measurement predicts (one tile of the model for it)."""
CACHE_VERSION = 1


# --- the cache ---------------------------------------------------------------------------------------


def runtime_cache_file() -> Path:
    """``$UNET_ZOO_CACHE/runtime.json``, else ``$XDG_CACHE_HOME/unet_zoo/runtime.json`` (``~/.cache/...``)."""
    base = os.environ.get(CACHE_ENV)
    return Path(base) / "runtime.json" if base else cache_dir("runtime.json")


def read_runtime_cache(path: Path | None = None) -> dict[str, Any]:
    """The cache's {"version", "inference": {key: entry}, "training": {key: entry}}; empty sections when the file
    is missing, unreadable, not JSON or of another version (it is then rewritten on the next choice)."""
    path = path or runtime_cache_file()
    empty: dict[str, Any] = {"version": CACHE_VERSION, "inference": {}, "training": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
        return empty
    for section in ("inference", "training"):
        if not isinstance(data.get(section), dict):
            data[section] = {}
    return data


def store_runtime_entry(section: str, key: str, entry: dict[str, Any]) -> None:
    """Add `entry` under `key` in `section` of the cache file (read, update, atomic write). A cache folder that
    cannot be written only loses the memory: the choice still runs."""
    path = runtime_cache_file()
    data = read_runtime_cache(path)
    data[section][key] = entry
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_name_and_flags() -> tuple[str, list[str]]:
    """(model name, sorted flags) of the first processor in /proc/cpuinfo; (platform name, []) elsewhere."""
    name, flags = "", list[str]()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith(("flags", "Features")) and not flags:
                    flags = sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    if not name:
        import platform

        name = platform.processor() or platform.machine() or "unknown"
    return name, flags


def machine_key(device: torch.device) -> dict[str, Any]:
    """What a measurement depends on besides the model: processor (CPU name and flags, or the GPU's name), torch's
    thread count and the versions of unet_zoo, torch, onnxruntime and openvino."""
    name, flags = cpu_name_and_flags()
    key: dict[str, Any] = {
        "cpu": name,
        "cpu_flags": hashlib.sha256(" ".join(flags).encode()).hexdigest()[:16],
        "threads": torch.get_num_threads(),
        "device": device.type,
        "unet_zoo": __version__,
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
    }
    if device.type == "cuda":
        key["gpu"] = torch.cuda.get_device_name(device)
    return key


WEIGHT_ONLY_ARGS = frozenset({"dropout", "init"})
"""Model arguments that do not change an inference's arithmetic (dropout is off in eval mode; init sets weights)."""


def architecture_key(model: nn.Module) -> dict[str, Any]:
    """The architecture of `model` for inference: its registry name and arguments (less `WEIGHT_ONLY_ARGS`), or
    its class and parameter shapes."""
    # the zoo's models carry a `unet_zoo.models.provenance.Provenance` (a layer above: read by its two fields)
    record = getattr(model, "provenance", None)
    name = getattr(record, "architecture", None)
    args = {k: v for k, v in (getattr(record, "args", None) or {}).items() if k not in WEIGHT_ONLY_ARGS}
    if name is not None:
        return {"model": str(name), "args": json.loads(json.dumps(args, sort_keys=True, default=str))}
    shapes = [list(p.shape) for p in model.parameters()]
    return {"model": type(model).__name__, "shapes": hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]}


def cache_key(parts: dict[str, Any]) -> str:
    """A short, stable digest of `parts` (a JSON-able dict): the cache entry's name."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


# --- inference ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathTiming:
    """One measured path: seconds per call of the representative input (the fastest timed call; None when it
    failed), its difference to torch float32 (largest and mean, in probability), whether it agrees, and the
    error when it failed to run."""

    seconds: float | None
    max_diff: float | None = None
    mean_diff: float | None = None
    agrees: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "max_diff": self.max_diff,
            "mean_diff": self.mean_diff,
            "agrees": self.agrees,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PathTiming:
        return cls(data.get("seconds"), data.get("max_diff"), data.get("mean_diff"), bool(data.get("agrees")), data.get("error"))


@dataclass
class InferenceChoice:
    """The path a prediction runs: its name, device and precision, the `forward` to give `predict_tiled` (None:
    predict_tiled's own torch path with `precision`), how it was decided ("measured", "cached", "forced" by a
    flag, "environment" by ``$UNET_ZOO_INFERENCE_PATH``) and the timings it was chosen from (seconds per path)."""

    path: str
    device: str
    precision: Literal["bf16", "fp32"]
    how: str
    forward: Forward | None = None
    timings: dict[str, PathTiming] = field(default_factory=dict)

    @property
    def backend(self) -> str:
        """ "torch", "onnxruntime" or "openvino"."""
        return PATH_BACKEND[self.path]

    def describe(self) -> str:
        """One line for people: the path, the device and why, with the measured seconds when there are any."""
        why = {
            "measured": "measured now",
            "cached": "measured before",
            "forced": "asked for",
            "environment": f"${INFERENCE_PATH_ENV}",
        }
        text = f"{self.path} on {self.device} ({why.get(self.how, self.how)})"
        times = [
            f"{p} {t.seconds:.3g} s{'' if t.agrees else ' (disagrees)'}"
            for p, t in sorted(self.timings.items(), key=lambda item: _order(item[0]))
            if t.seconds is not None
        ]
        return text + (f"; measured per call: {', '.join(times)}" if times else "")

    def record(self) -> dict[str, Any]:
        """What outputs store about the run: {"path", "backend", "precision", "device", "how", "timings_s"}."""
        return {
            "path": self.path,
            "backend": self.backend,
            "precision": self.precision,
            "device": self.device,
            "how": self.how,
            "timings_s": {p: t.seconds for p, t in sorted(self.timings.items(), key=lambda item: _order(item[0]))},
        }


def _order(path: str) -> int:
    return INFERENCE_PATHS.index(path) if path in INFERENCE_PATHS else len(INFERENCE_PATHS)


def check_inference_path_env() -> str | None:
    """``$UNET_ZOO_INFERENCE_PATH`` when set (None when not); ValueError naming it when it is not a path."""
    env = os.environ.get(INFERENCE_PATH_ENV, "").strip()
    if env and env not in INFERENCE_PATHS:
        raise ValueError(f"{INFERENCE_PATH_ENV}={env!r} is not a path; use one of {', '.join(INFERENCE_PATHS)}, or unset it")
    return env or None


def allowed_inference_paths(backend: str = "auto", precision: str = "auto") -> list[str]:
    """The paths `backend` ("auto", "torch", "onnxruntime", "openvino") and `precision` ("auto", "bf16",
    "fp32") allow, in tie-break order; ValueError when a value is unknown or the two exclude every path."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    paths = [p for p in INFERENCE_PATHS if backend in ("auto", PATH_BACKEND[p]) and precision in ("auto", PATH_PRECISION[p])]
    if not paths:
        raise ValueError(f"backend {backend} runs in float32 only; use precision fp32 (or auto), or backend torch for bf16")
    return paths


def representative_image(side: int = MEASURE_IMAGE_SIDE, seed: int = 0) -> np.ndarray:
    """A (side, side) float32 image in [0, 1] with structure at several scales (smoothed noise, seeded)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((side, side), dtype=np.float32)
    for cells in (4, 16, 64):
        coarse = rng.random((cells, cells), dtype=np.float32)
        image += np.kron(coarse, np.ones((-(-side // cells),) * 2, dtype=np.float32))[:side, :side]
    return image / 3.0


def forced_inference_path(allowed: list[str]) -> tuple[str, str] | None:
    """(path, how) when one path is allowed ("forced") or ``$UNET_ZOO_INFERENCE_PATH`` names an allowed one."""
    if len(allowed) == 1:
        return allowed[0], "forced"
    env = check_inference_path_env()
    return (env, "environment") if env in allowed else None


def fastest_agreeing_path(timings: dict[str, PathTiming], allowed: Iterable[str] | None = None) -> str | None:
    """The fastest path of `timings` (among `allowed`, default all) that ran and agrees with float32; ties go
    to the earlier path of `INFERENCE_PATHS`. None when no allowed path qualifies."""
    names = set(allowed) if allowed is not None else set(timings)
    usable = [
        (t.seconds, INFERENCE_PATHS.index(p) if p in INFERENCE_PATHS else 99, p)
        for p, t in timings.items()
        if p in names and t.agrees and t.seconds is not None
    ]
    return min(usable)[2] if usable else None


def cached_inference_entry(model: nn.Module, device: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The runtime cache's entry for `model`'s architecture on this machine ({"chosen", "timings", "measured_at",
    ...}), or None when it has not been measured here."""
    dev = resolve_device(device)
    key = cache_key({"machine": machine_key(dev), "architecture": architecture_key(model)})
    entry = read_runtime_cache()["inference"].get(key)
    return entry if isinstance(entry, dict) else None


def cached_inference_choices() -> list[dict[str, Any]]:
    """Every inference entry of the runtime cache: [{"architecture", "machine", "chosen", "timings", "measured_at"}]."""
    return [dict(entry) for entry in read_runtime_cache()["inference"].values() if isinstance(entry, dict)]


# --- training ----------------------------------------------------------------------------------------


@dataclass
class TrainingChoice:
    """The precision training steps run in ("bf16" autocast or "fp32"), how it was decided ("measured",
    "cached", "forced", "environment", "rule" on GPUs, "resumed" from a checkpoint) and the step seconds."""

    precision: Literal["bf16", "fp32"]
    how: str
    timings: dict[str, float | None] = field(default_factory=dict)

    def describe(self) -> str:
        times = ", ".join(f"{p} {s:.3g} s" for p, s in self.timings.items() if s is not None)
        return f"{self.precision} ({self.how}{'; one step: ' + times if times else ''})"


def faster_training_precision(timings: dict[str, float | None]) -> Literal["bf16", "fp32"]:
    """ "bf16" when its measured step is faster than the float32 one, else "fp32" (also when either is missing)."""
    fp32, bf16 = timings.get("fp32"), timings.get("bf16")
    return "bf16" if fp32 is not None and bf16 is not None and bf16 < fp32 else "fp32"


def training_key_parts(model_name: str, model_args: dict[str, Any], tile: int, batch: int, dev: torch.device) -> dict:
    return {
        "machine": machine_key(dev),
        "architecture": {"model": model_name, "args": json.loads(json.dumps(model_args, sort_keys=True, default=str))},
        "step": {"tile": tile, "batch": batch},
    }


def cached_training_entry(
    model_name: str, model_args: dict[str, Any], tile: int, batch: int, device: str | torch.device = "cpu"
) -> dict[str, Any] | None:
    """The runtime cache's training entry ({"chosen", "timings", ...}) for this step on this machine, or None."""
    key = cache_key(training_key_parts(model_name, model_args, tile, batch, resolve_device(device)))
    entry = read_runtime_cache()["training"].get(key)
    return entry if isinstance(entry, dict) else None


__all__ = [
    "AGREEMENT",
    "CACHE_ENV",
    "INFERENCE_PATHS",
    "INFERENCE_PATH_ENV",
    "PATH_BACKEND",
    "PATH_PRECISION",
    "TRAINING_PRECISIONS",
    "TRAINING_PRECISION_ENV",
    "InferenceChoice",
    "PathTiming",
    "TrainingChoice",
    "allowed_inference_paths",
    "architecture_key",
    "cache_key",
    "cached_inference_choices",
    "cached_inference_entry",
    "cached_training_entry",
    "check_inference_path_env",
    "cpu_name_and_flags",
    "faster_training_precision",
    "fastest_agreeing_path",
    "forced_inference_path",
    "machine_key",
    "read_runtime_cache",
    "representative_image",
    "runtime_cache_file",
    "store_runtime_entry",
    "training_key_parts",
]
