"""The inference path "auto" runs: the fastest of torch, onnxruntime and OpenVINO measured on this machine.

`choose_inference_path` (used by ``unet-zoo predict``/``evaluate``/``segment``, volumes, napari and the
benchmarks) measures every candidate path the first time an architecture runs on a machine
(`measure_inference_paths`, a few seconds in all), keeps the fastest whose probabilities agree with torch
float32 within `unet_zoo.runtime.measured.AGREEMENT`, and stores the choice with its timings in the runtime
cache; later runs read it. The measuring and choosing machinery is `unet_zoo.inference.paths`; this module
adds the exported paths (`candidate_inference_paths`, `inference_path_forward`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

from unet_zoo.exporters.sessions import (
    Export,
    model_exports,
    onnxruntime_available,
    onnxruntime_forward,
    openvino_available,
    openvino_forward,
)
from unet_zoo.inference import paths as torch_paths
from unet_zoo.inference.tiling import predict_tiled
from unet_zoo.runtime.measured import (
    INFERENCE_PATHS,
    MEASURE_BUDGET_S,
    PATH_BACKEND,
    Forward,
    InferenceChoice,
    Log,
    PathTiming,
)
from unet_zoo.runtime.settings import cpu_bf16_hardware
from unet_zoo.utils.device import resolve_device


def candidate_inference_paths(device: torch.device) -> list[str]:
    """The paths worth measuring on `device`: torch float32; torch bf16 where the GPU or CPU has bf16 units;
    on the CPU onnxruntime and OpenVINO float32 when installed, and OpenVINO bf16 with a CPU bf16 unit."""
    if device.type != "cpu":
        return torch_paths.torch_candidate_paths(device)
    bf16 = cpu_bf16_hardware() is not None
    ort, ov = onnxruntime_available(), openvino_available()
    wanted = {"torch-fp32": True, "torch-bf16": bf16, "onnxruntime-fp32": ort, "openvino-f32": ov, "openvino-bf16": ov and bf16}
    return [p for p in INFERENCE_PATHS if wanted[p]]


def inference_path_forward(model: nn.Module, path: str, export: Export | None = None) -> Forward | None:
    """The `forward` of `path` for `predict_tiled`: None for the torch paths (predict_tiled runs torch with the
    path's precision), else the exported model's `unet_zoo.exporters.sessions.ExportedForward` (`export`: the
    model's ONNX exports, `model_exports`, to share them between paths). ImportError names the extra to install."""
    if path not in INFERENCE_PATHS:
        raise ValueError(f"unknown inference path {path!r}; use one of {', '.join(INFERENCE_PATHS)}")
    if path == "onnxruntime-fp32":
        return onnxruntime_forward(model, export=export)
    if path in ("openvino-f32", "openvino-bf16"):
        return openvino_forward(model, "f32" if path == "openvino-f32" else "bf16", export=export)
    return None


def _shared_export_forwards(model: nn.Module) -> Callable[[nn.Module, str], Forward | None]:
    """`inference_path_forward` with the ONNX exports shared by every exported path it builds (made when used)."""
    exports: list[Export] = []

    def forward_for(net: nn.Module, path: str) -> Forward | None:
        if PATH_BACKEND.get(path, "torch") == "torch":
            return inference_path_forward(net, path)
        if not exports:
            exports.append(model_exports(model))
        return inference_path_forward(net, path, exports[0])

    return forward_for


def measure_inference_paths(
    model: nn.Module,
    device: str | torch.device | None = None,
    paths: Iterable[str] | None = None,
    *,
    image: np.ndarray | None = None,
    budget_s: float = MEASURE_BUDGET_S,
    log: Log | None = None,
) -> tuple[dict[str, PathTiming], dict[str, Forward | None]]:
    """Time each path of `paths` (default: `candidate_inference_paths`) predicting `image` (default: one tile of
    `unet_zoo.runtime.measured.representative_image`) with `predict_tiled`, and compare its probabilities with
    torch float32 (`unet_zoo.inference.paths.measure_paths`). Returns ({path: `PathTiming`}, {path: forward})."""
    dev = resolve_device(device)
    todo = list(paths) if paths is not None else candidate_inference_paths(dev)
    return torch_paths.measure_paths(
        model,
        dev,
        todo,
        predict=predict_tiled,
        forward_for=_shared_export_forwards(model),
        image=image,
        budget_s=budget_s,
        log=log,
    )


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
    path that agrees with float32 as measured on this machine (cached per machine and architecture; `refresh`
    measures again).

    The model must be on `device`; onnxruntime and OpenVINO run on the CPU. `build_forward` False leaves
    ``forward`` None (for callers that only need the precision of a torch path). Raises ValueError for unknown
    values or a combination with no path (e.g. backend onnxruntime with precision bf16 or on a GPU), and
    ImportError when the forced backend is not installed.
    """
    return torch_paths.choose_path(
        model,
        device,
        predict=predict_tiled,
        candidates=candidate_inference_paths,
        forward_for=_shared_export_forwards(model),
        backend=backend,
        precision=precision,
        refresh=refresh,
        build_forward=build_forward,
        log=log,
    )


__all__ = [
    "candidate_inference_paths",
    "choose_inference_path",
    "inference_path_forward",
    "measure_inference_paths",
]
