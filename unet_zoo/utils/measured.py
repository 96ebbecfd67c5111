"""What "auto" means for prediction and training: the fastest path measured on this machine, remembered.

Inference: the first time a model architecture runs on a machine, `choose_inference_path` times every
candidate path on a representative input (`measure_inference_paths`, a few seconds in all), keeps the fastest
whose probabilities agree with torch float32 within `AGREEMENT` (`fastest_agreeing_path`), and stores the
choice with its timings in the runtime cache (`runtime_cache_file`). Later runs read it. The paths:

    torch-fp32        torch eager, float32 (the reference)
    torch-bf16        torch bf16 autocast + channels_last (candidate where the CPU has bf16 units, or on a GPU with bf16)
    onnxruntime-fp32  the ONNX export run by onnxruntime (``pip install "unet-zoo[export]"``; CPU)
    openvino-f32      the ONNX export run by OpenVINO in float32 (``pip install "unet-zoo[openvino]"``; CPU)
    openvino-bf16     the same with OpenVINO's bf16 hint (candidate where the CPU has bf16 units)

Training: `choose_training_precision` times one training step in float32 and in bf16 autocast on the CPU
(`measure_training_precisions`) and keeps the faster; on CUDA "auto" is bf16 where the GPU supports it.

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
import time
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
from unet_zoo.utils.runtime import cpu_bf16_hardware

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


def _store(section: str, key: str, entry: dict[str, Any]) -> None:
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
    name = getattr(model, "model_name", None)
    args = {k: v for k, v in (getattr(model, "model_args", None) or {}).items() if k not in WEIGHT_ONLY_ARGS}
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


def candidate_inference_paths(device: torch.device) -> list[str]:
    """The paths worth measuring on `device`: torch float32; torch bf16 where the GPU or CPU has bf16 units;
    on the CPU onnxruntime and OpenVINO float32 when installed, and OpenVINO bf16 with a CPU bf16 unit."""
    from unet_zoo.exporters.sessions import onnxruntime_available, openvino_available

    if device.type == "cuda":
        return ["torch-fp32", *(["torch-bf16"] if torch.cuda.is_bf16_supported() else [])]
    if device.type != "cpu":
        return ["torch-fp32"]
    bf16 = cpu_bf16_hardware() is not None
    ort, ov = onnxruntime_available(), openvino_available()
    wanted = {"torch-fp32": True, "torch-bf16": bf16, "onnxruntime-fp32": ort, "openvino-f32": ov, "openvino-bf16": ov and bf16}
    return [p for p in INFERENCE_PATHS if wanted[p]]


def inference_path_forward(model: nn.Module, path: str, onnx: Callable[[], bytes] | None = None) -> Forward | None:
    """The `forward` of `path` for `predict_tiled`: None for the torch paths (predict_tiled runs torch with the
    path's precision), else the exported model's session (`onnx()`: the model's ONNX export, to share one
    export between sessions). ImportError names the extra to install."""
    from unet_zoo.exporters.sessions import onnxruntime_forward, openvino_forward

    if path not in INFERENCE_PATHS:
        raise ValueError(f"unknown inference path {path!r}; use one of {', '.join(INFERENCE_PATHS)}")
    exported = onnx() if onnx is not None and PATH_BACKEND[path] != "torch" else None
    if path == "onnxruntime-fp32":
        return onnxruntime_forward(model, onnx=exported)
    if path in ("openvino-f32", "openvino-bf16"):
        return openvino_forward(model, "f32" if path == "openvino-f32" else "bf16", onnx=exported)
    return None


def representative_image(side: int = MEASURE_IMAGE_SIDE, seed: int = 0) -> np.ndarray:
    """A (side, side) float32 image in [0, 1] with structure at several scales (smoothed noise, seeded)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((side, side), dtype=np.float32)
    for cells in (4, 16, 64):
        coarse = rng.random((cells, cells), dtype=np.float32)
        image += np.kron(coarse, np.ones((-(-side // cells),) * 2, dtype=np.float32))[:side, :side]
    return image / 3.0


def _contiguous(model: nn.Module) -> None:
    """Back to the default memory layout after a channels_last run (an in-place conversion of the weights)."""
    model.to(memory_format=torch.contiguous_format)


def measure_inference_paths(
    model: nn.Module,
    device: str | torch.device | None = None,
    paths: Iterable[str] | None = None,
    *,
    image: np.ndarray | None = None,
    budget_s: float = MEASURE_BUDGET_S,
    log: Log | None = None,
) -> tuple[dict[str, PathTiming], dict[str, Forward | None]]:
    """Time each path of `paths` (default: `candidate_inference_paths`) predicting `image` (default:
    `representative_image`, one tile) with `predict_tiled`, and compare its probabilities with torch float32.

    Each path runs once untimed (oneDNN primitives, session start-up), then is timed until its share of
    `budget_s` seconds is spent (at least once); its time is the fastest call. A path that fails to build or
    run is kept with its error. Returns ({path: `PathTiming`}, {path: its forward, for the ones that ran}).
    """
    from unet_zoo.inference.tiling import predict_tiled

    dev = resolve_device(device)
    todo = list(paths) if paths is not None else candidate_inference_paths(dev)
    todo = ["torch-fp32"] + [p for p in todo if p != "torch-fp32"]  # the reference first
    picture = representative_image() if image is None else image
    share = budget_s / max(1, len(todo))
    timings: dict[str, PathTiming] = {}
    forwards: dict[str, Forward | None] = {}
    reference: np.ndarray | None = None
    exports: list[bytes] = []

    def onnx() -> bytes:  # one ONNX export for every exported path
        if not exports:
            from unet_zoo.exporters.traced import onnx_bytes

            exports.append(onnx_bytes(model))
        return exports[0]

    with torch.random.fork_rng(devices=[]):  # the measurement leaves the caller's random streams alone
        for path in todo:
            if log is not None:
                log(f"measuring {path} on {dev.type}")
            try:
                forward = inference_path_forward(model, path, onnx)

                def run(forward: Forward | None = forward, path: str = path) -> np.ndarray:
                    return predict_tiled(
                        model, picture, device=dev, batch_size=1, forward=forward, precision=PATH_PRECISION[path]
                    )

                output = run()  # warm-up, and the output compared with float32
                seconds: list[float] = []
                started = time.perf_counter()
                while not seconds or time.perf_counter() - started < share:
                    t0 = time.perf_counter()
                    run()
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    seconds.append(time.perf_counter() - t0)
            except Exception as err:  # noqa: BLE001  a path that cannot run here is not chosen; the others still are
                timings[path] = PathTiming(None, error=f"{type(err).__name__}: {err}"[:300])
                continue
            finally:
                _contiguous(model)
            if reference is None:
                reference = output
            diff = np.abs(output.astype(np.float64) - reference)
            max_diff, mean_diff = float(diff.max()), float(diff.mean())
            agrees = max_diff <= AGREEMENT["max"] and mean_diff <= AGREEMENT["mean"]
            timings[path] = PathTiming(min(seconds), max_diff, mean_diff, agrees)
            forwards[path] = forward
    return timings, forwards


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


def _forced_path(allowed: list[str]) -> tuple[str, str] | None:
    """(path, how) when one path is allowed ("forced") or ``$UNET_ZOO_INFERENCE_PATH`` names an allowed one."""
    if len(allowed) == 1:
        return allowed[0], "forced"
    env = check_inference_path_env()
    return (env, "environment") if env in allowed else None


_MEMORY: dict[str, dict[str, Any]] = {}  # this process's cache entries, so predict_tiled per slice reads the file once


def choose_inference_path(
    model: nn.Module,
    device: str | torch.device | None = None,
    *,
    backend: str = "auto",
    precision: str = "auto",
    refresh: bool = False,
    build_forward: bool = True,
    log: Log | None = None,
) -> InferenceChoice:
    """The inference path for `model` on `device` (default: the model's device): the one `backend` and
    `precision` leave, else ``$UNET_ZOO_INFERENCE_PATH`` when it names an allowed path, else the fastest allowed
    path that agrees with float32 as measured on this machine (`measure_inference_paths`, cached per machine and
    architecture; `refresh` measures again).

    The model must be on `device`; onnxruntime and OpenVINO run on the CPU. `build_forward` False leaves
    ``forward`` None (for callers that only need the precision of a torch path). Raises ValueError for unknown
    values or a combination with no path (e.g. backend onnxruntime with precision bf16 or on a GPU), and
    ImportError when the forced backend is not installed.
    """
    if device is None:
        try:
            device = next(model.parameters()).device
        except StopIteration:
            device = "cpu"
    allowed = allowed_inference_paths(backend, precision)
    kind = device.type if isinstance(device, torch.device) else torch.device(device).type
    if kind != "cpu" and all(PATH_BACKEND[p] != "torch" for p in allowed):
        raise ValueError(f"backend {backend} runs on the CPU; use device cpu or backend torch")
    dev = resolve_device(device)
    if dev.type != "cpu":
        allowed = [p for p in allowed if PATH_BACKEND[p] == "torch"]
    forced = _forced_path(allowed)
    if forced is not None:
        path, how = forced
        forward = inference_path_forward(model, path) if build_forward else None
        return InferenceChoice(path, str(dev), PATH_PRECISION[path], how, forward)

    candidates = candidate_inference_paths(dev)
    if not any(p in candidates for p in allowed):  # e.g. bf16 asked for on a CPU without bf16 units: as asked
        forward = inference_path_forward(model, allowed[0]) if build_forward else None
        return InferenceChoice(allowed[0], str(dev), PATH_PRECISION[allowed[0]], "forced", forward)
    key_parts = {"machine": machine_key(dev), "architecture": architecture_key(model)}
    key = cache_key(key_parts)
    memo = f"{runtime_cache_file()}:{key}"
    entry = None if refresh else (_MEMORY.get(memo) or read_runtime_cache()["inference"].get(key))
    timings: dict[str, PathTiming] = {}
    forwards: dict[str, Forward | None] = {}
    how = "cached"
    if entry is not None:
        timings = {p: PathTiming.from_dict(t) for p, t in entry.get("timings", {}).items() if isinstance(t, dict)}
    if entry is None or any(p not in timings for p in candidates):  # new, or a backend installed since
        how = "measured"
        timings, forwards = measure_inference_paths(model, dev, candidates, log=log)
        entry = {
            **key_parts,
            "timings": {p: t.as_dict() for p, t in timings.items()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        entry["chosen"] = fastest_agreeing_path(timings, candidates)
        _store("inference", key, entry)
    _MEMORY[memo] = entry
    path = fastest_agreeing_path(timings, [p for p in allowed if p in candidates]) or allowed[0]
    if build_forward and path in forwards:
        forward = forwards[path]
    else:
        forward = inference_path_forward(model, path) if build_forward else None
    return InferenceChoice(path, str(dev), PATH_PRECISION[path], how, forward, timings)


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


def measure_training_precisions(
    model_name: str,
    model_args: dict[str, Any],
    tile: int,
    batch: int,
    device: str | torch.device | None = "cpu",
    *,
    budget_s: float = MEASURE_BUDGET_S,
    precisions: Iterable[str] = TRAINING_PRECISIONS,
    log: Log | None = None,
) -> dict[str, float | None]:
    """Seconds of one training step (`unet_zoo.training.step.train_step`: forward, weighted loss, backward, SGD)
    on (batch, C_in, tile, tile) random tiles, per precision: the fastest timed step after one untimed one, each
    precision timed for its share of `budget_s`. A precision that fails to run gets None. The caller's random
    streams are left as they were."""
    from unet_zoo.models.registry import create_model
    from unet_zoo.training.step import train_step
    from unet_zoo.utils.runtime import prepare_input, prepare_model, runtime_settings

    dev = resolve_device(device)
    names = list(precisions)
    share = budget_s / max(1, len(names))
    result: dict[str, float | None] = {}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        for precision in names:
            if log is not None:
                log(f"measuring a {precision} training step on {dev.type}")
            try:
                torch.manual_seed(0)
                settings = runtime_settings(dev, precision)  # type: ignore[arg-type]  # "fp32" or "bf16"
                model = create_model(model_name, **model_args)
                net = prepare_model(model, dev, channels_last=settings.channels_last).train()
                optimizer = torch.optim.SGD(net.parameters(), lr=1e-6, momentum=0.99)
                x = prepare_input(
                    torch.rand(batch, int(getattr(model, "in_channels", 1)), tile, tile),
                    dev,
                    channels_last=settings.channels_last,
                )
                out = int(model.output_size(tile))  # type: ignore[operator]  # a zoo model's method
                target = torch.randint(0, int(getattr(model, "num_classes", 2)), (batch, out, out), device=dev)
                amp = settings.amp_dtype is not None
                train_step(net, optimizer, x, target, None, dev, amp=amp)  # warm-up
                seconds: list[float] = []
                started = time.perf_counter()
                while not seconds or time.perf_counter() - started < share:
                    t0 = time.perf_counter()
                    train_step(net, optimizer, x, target, None, dev, amp=amp)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    seconds.append(time.perf_counter() - t0)
                result[precision] = min(seconds)
            except Exception:  # noqa: BLE001  a precision that cannot run here is not chosen
                result[precision] = None
    return result


def faster_training_precision(timings: dict[str, float | None]) -> Literal["bf16", "fp32"]:
    """ "bf16" when its measured step is faster than the float32 one, else "fp32" (also when either is missing)."""
    fp32, bf16 = timings.get("fp32"), timings.get("bf16")
    return "bf16" if fp32 is not None and bf16 is not None and bf16 < fp32 else "fp32"


def _training_key_parts(model_name: str, model_args: dict[str, Any], tile: int, batch: int, dev: torch.device) -> dict:
    return {
        "machine": machine_key(dev),
        "architecture": {"model": model_name, "args": json.loads(json.dumps(model_args, sort_keys=True, default=str))},
        "step": {"tile": tile, "batch": batch},
    }


def cached_training_entry(
    model_name: str, model_args: dict[str, Any], tile: int, batch: int, device: str | torch.device = "cpu"
) -> dict[str, Any] | None:
    """The runtime cache's training entry ({"chosen", "timings", ...}) for this step on this machine, or None."""
    key = cache_key(_training_key_parts(model_name, model_args, tile, batch, resolve_device(device)))
    entry = read_runtime_cache()["training"].get(key)
    return entry if isinstance(entry, dict) else None


def choose_training_precision(
    model_name: str,
    model_args: dict[str, Any],
    tile: int,
    batch: int,
    device: str | torch.device | None = "cpu",
    *,
    precision: str = "auto",
    refresh: bool = False,
    log: Log | None = None,
) -> TrainingChoice:
    """The precision of training steps: `precision` when it is "bf16" or "fp32"; for "auto",
    ``$UNET_ZOO_TRAINING_PRECISION`` when set, bf16 on CUDA GPUs that support it, and on the CPU bf16 autocast
    where it has bf16 units and a measured step (`measure_training_precisions`, cached per machine,
    architecture and tile/batch) is faster than float32; else float32."""
    if precision in TRAINING_PRECISIONS:
        return TrainingChoice(precision, "forced")  # type: ignore[arg-type]  # checked above
    if precision != "auto":
        raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
    env = os.environ.get(TRAINING_PRECISION_ENV, "").strip()
    if env:
        if env not in TRAINING_PRECISIONS:
            raise ValueError(f"{TRAINING_PRECISION_ENV}={env!r} must be fp32 or bf16 (or unset)")
        return TrainingChoice(env, "environment")  # type: ignore[arg-type]  # checked above
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if dev.type == "cuda":
        return TrainingChoice("bf16" if torch.cuda.is_bf16_supported() else "fp32", "rule")
    if dev.type != "cpu" or cpu_bf16_hardware() is None:
        return TrainingChoice("fp32", "rule")  # bf16 would be emulated: always slower
    key_parts = _training_key_parts(model_name, model_args, tile, batch, dev)
    key = cache_key(key_parts)
    entry = None if refresh else read_runtime_cache()["training"].get(key)
    if isinstance(entry, dict) and isinstance(entry.get("timings"), dict):
        return TrainingChoice(faster_training_precision(entry["timings"]), "cached", dict(entry["timings"]))
    timings = measure_training_precisions(model_name, model_args, tile, batch, dev, log=log)
    chosen = faster_training_precision(timings)
    _store(
        "training",
        key,
        {**key_parts, "timings": timings, "chosen": chosen, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    )
    return TrainingChoice(chosen, "measured", timings)


__all__ = [
    "AGREEMENT",
    "CACHE_ENV",
    "INFERENCE_PATHS",
    "INFERENCE_PATH_ENV",
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
    "candidate_inference_paths",
    "choose_inference_path",
    "choose_training_precision",
    "cpu_name_and_flags",
    "faster_training_precision",
    "fastest_agreeing_path",
    "inference_path_forward",
    "machine_key",
    "measure_inference_paths",
    "measure_training_precisions",
    "read_runtime_cache",
    "representative_image",
    "runtime_cache_file",
]
