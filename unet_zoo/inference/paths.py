"""Measuring inference paths and choosing the fastest that agrees with float32 (`choose_path`).

The machinery runs whatever `predict` it is given (`unet_zoo.inference.tiling.predict_tiled`, which passes
itself when its precision is "auto") with each path's `forward` (None: predict's own torch path in the path's
precision), so it imports nothing above the inference layer. `unet_zoo.inference.tiling` chooses among the
torch paths (`torch_candidate_paths`); `unet_zoo.exporters.paths.choose_inference_path` adds onnxruntime and
OpenVINO. The cache, the records and the decisions from timings are in `unet_zoo.runtime.measured`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from unet_zoo.runtime.measured import (
    AGREEMENT,
    MEASURE_BUDGET_S,
    PATH_BACKEND,
    PATH_PRECISION,
    Forward,
    InferenceChoice,
    Log,
    PathTiming,
    allowed_inference_paths,
    architecture_key,
    cache_key,
    fastest_agreeing_path,
    forced_inference_path,
    machine_key,
    read_runtime_cache,
    representative_image,
    runtime_cache_file,
    store_runtime_entry,
)
from unet_zoo.runtime.settings import cpu_bf16_hardware
from unet_zoo.utils.device import resolve_device


class Predict(Protocol):
    """`predict_tiled`'s call as a measurement makes it: (H, W) image -> (C, H, W) probabilities."""

    def __call__(
        self,
        model: nn.Module,
        image: np.ndarray,
        *,
        device: torch.device,
        batch_size: int,
        forward: Forward | None,
        precision: Any,
    ) -> np.ndarray: ...


ForwardFor = Callable[[nn.Module, str], Forward | None]
"""(model, path) -> the path's forward for `predict` (None for a torch path)."""


def torch_candidate_paths(device: torch.device) -> list[str]:
    """The torch paths worth measuring on `device`: float32, and bf16 where the GPU or the CPU has bf16 units."""
    if device.type == "cuda":
        return ["torch-fp32", *(["torch-bf16"] if torch.cuda.is_bf16_supported() else [])]
    if device.type != "cpu":
        return ["torch-fp32"]
    return ["torch-fp32", *(["torch-bf16"] if cpu_bf16_hardware() is not None else [])]


def torch_forward(model: nn.Module, path: str) -> Forward | None:
    """The forward of a torch path: None (predict runs torch in the path's precision); ValueError otherwise."""
    if PATH_BACKEND.get(path) != "torch":
        raise ValueError(f"{path!r} is not a torch path; use unet_zoo.exporters.paths for exported paths")
    return None


def _contiguous(model: nn.Module) -> None:
    """Back to the default memory layout after a channels_last run (an in-place conversion of the weights)."""
    model.to(memory_format=torch.contiguous_format)


def measure_paths(
    model: nn.Module,
    device: str | torch.device | None,
    paths: Iterable[str],
    *,
    predict: Predict,
    forward_for: ForwardFor = torch_forward,
    image: np.ndarray | None = None,
    budget_s: float = MEASURE_BUDGET_S,
    log: Log | None = None,
) -> tuple[dict[str, PathTiming], dict[str, Forward | None]]:
    """Time each path of `paths` predicting `image` (default: `representative_image`, one tile) with `predict`,
    and compare its probabilities with torch float32.

    Each path runs twice untimed (oneDNN primitives, session start-up), then is timed until its share of
    `budget_s` seconds is spent (at least once); its time is the fastest call. A path that fails to build or
    run is kept with its error. Returns ({path: `PathTiming`}, {path: its forward, for the ones that ran}).
    """
    dev = resolve_device(device)
    todo = ["torch-fp32"] + [p for p in paths if p != "torch-fp32"]  # the reference first
    picture = representative_image() if image is None else image
    share = budget_s / max(1, len(todo))
    timings: dict[str, PathTiming] = {}
    forwards: dict[str, Forward | None] = {}
    reference: np.ndarray | None = None
    with torch.random.fork_rng(devices=[]):  # the measurement leaves the caller's random streams alone
        for path in todo:
            if log is not None:
                log(f"measuring {path} on {dev.type}")
            try:
                forward = forward_for(model, path)

                def run(forward: Forward | None = forward, path: str = path) -> np.ndarray:
                    return predict(model, picture, device=dev, batch_size=1, forward=forward, precision=PATH_PRECISION[path])

                run()  # warm-up: oneDNN primitives, sessions (an exported path's window gets its own on the next call)
                output = run()  # warm-up too, and the output compared with float32
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


_MEMORY: dict[str, dict[str, Any]] = {}  # this process's cache entries, so predict_tiled per slice reads the file once


def choose_path(
    model: nn.Module,
    device: str | torch.device | None = None,
    *,
    predict: Predict,
    candidates: Callable[[torch.device], list[str]] | None = None,
    forward_for: ForwardFor = torch_forward,
    backend: str = "auto",
    precision: str = "auto",
    refresh: bool = False,
    build_forward: bool = True,
    log: Log | None = None,
) -> InferenceChoice:
    """The inference path for `model` on `device` (default: the model's device) among `candidates(device)`
    (default: `torch_candidate_paths`): the one `backend` and `precision` leave, else
    ``$UNET_ZOO_INFERENCE_PATH`` when it names an allowed path, else the fastest allowed path that agrees with
    float32 as measured on this machine with `predict` (`measure_paths`, cached per machine and architecture;
    `refresh` measures again).

    `build_forward` False leaves ``forward`` None (for callers that only need the precision of a torch path).
    Raises ValueError for unknown values or a combination with no path (e.g. backend onnxruntime with
    precision bf16 or on a GPU), and what `forward_for` raises for a forced path that cannot be built.
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
    forced = forced_inference_path(allowed)
    if forced is not None:
        path, how = forced
        forward = forward_for(model, path) if build_forward else None
        return InferenceChoice(path, str(dev), PATH_PRECISION[path], how, forward)

    measurable = (candidates or torch_candidate_paths)(dev)
    if not any(p in measurable for p in allowed):  # e.g. bf16 asked for on a CPU without bf16 units: as asked
        forward = forward_for(model, allowed[0]) if build_forward else None
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
    if entry is None or any(p not in timings for p in measurable):  # new, or a backend installed since
        how = "measured"
        timings, forwards = measure_paths(model, dev, measurable, predict=predict, forward_for=forward_for, log=log)
        entry = {
            **key_parts,
            "timings": {p: t.as_dict() for p, t in timings.items()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        entry["chosen"] = fastest_agreeing_path(timings, measurable)
        store_runtime_entry("inference", key, entry)
    _MEMORY[memo] = entry
    path = fastest_agreeing_path(timings, [p for p in allowed if p in measurable]) or allowed[0]
    if build_forward and path in forwards:
        forward = forwards[path]
    else:
        forward = forward_for(model, path) if build_forward else None
    return InferenceChoice(path, str(dev), PATH_PRECISION[path], how, forward, timings)


__all__ = [
    "ForwardFor",
    "Predict",
    "choose_path",
    "measure_paths",
    "torch_candidate_paths",
    "torch_forward",
]
