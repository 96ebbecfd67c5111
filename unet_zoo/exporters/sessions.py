"""onnxruntime as an inference backend: the ONNX export of a model as a function on NumPy tiles.

`onnxruntime_forward(model)` returns a callable mapping (N, C_in, H, W) float32 arrays to (N, C, H', W')
float32 probabilities, which `unet_zoo.inference.tiling.predict_tiled(..., forward=...)` uses in place of torch;
`openvino_forward(model, hint)` does the same with OpenVINO. Which path runs by default is measured
(`unet_zoo.exporters.paths.choose_inference_path`).
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.exporters.traced import INPUT_NAME, onnx_bytes
from unet_zoo.utils.signals import keep_signal_stack

EXTRA_HINT = 'pip install "unet-zoo[export]"'


def require(module: str, purpose: str):
    """Import optional module `module` or raise ImportError saying how to install the export extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the {module} package ({err}); install it with {EXTRA_HINT}") from None


def onnxruntime_session(onnx_model: bytes | str | Path, threads: int | None = None):
    """An onnxruntime CPU InferenceSession of an ONNX model (bytes or a file); `threads`: intra-op threads
    (default: torch's thread count, so both backends use the same cores)."""
    ort = require("onnxruntime", "running ONNX models")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = onnx_model if isinstance(onnx_model, bytes) else str(onnx_model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


def session_forward(session) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap an onnxruntime session of a zoo export: (N, C_in, H, W) float32 -> (N, C, H', W') probabilities."""
    name = session.get_inputs()[0].name if session.get_inputs() else INPUT_NAME

    def forward(tiles: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(tiles, dtype=np.float32)})[0]

    return forward


def onnxruntime_forward(
    model: nn.Module, threads: int | None = None, onnx: bytes | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """Export `model` to ONNX in memory (or take its export `onnx`) and return its onnxruntime forward function
    (see `session_forward`)."""
    require("onnx", "exporting to ONNX")
    return session_forward(onnxruntime_session(onnx if onnx is not None else onnx_bytes(model), threads))


def onnxruntime_available() -> bool:
    """Whether onnx and onnxruntime are installed (the ``export`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def openvino_available() -> bool:
    """Whether onnx and the optional ``openvino`` package are installed (``pip install "unet-zoo[openvino]"``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "openvino"))


def openvino_forward(
    model: nn.Module, precision_hint: str | None, threads: int | None = None, onnx: bytes | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """OpenVINO CPU forward of `model`'s ONNX export: (N, C_in, H, W) float32 -> (N, C, H', W') probabilities.

    `precision_hint`: OpenVINO's INFERENCE_PRECISION_HINT ("f32", "bf16"), or None for its default; `threads`:
    INFERENCE_NUM_THREADS (default: torch's thread count); `onnx`: the model's ONNX export, if made already.
    The returned function's ``precision`` attribute is what OpenVINO runs: "bf16" or "fp32". Raises ImportError
    naming the extra when openvino is not installed.
    """
    ov = require("openvino", "running models with OpenVINO")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx if onnx is not None else onnx_bytes(model))
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        # OpenVINO installs its own alternate signal stack on this thread and, when two compiled models are
        # released in the order they were made, leaves a freed one behind: the next signal would then crash
        # the process. Keep the caller's stack (unet_zoo.utils.signals explains).
        with keep_signal_stack():
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def forward(tiles: np.ndarray) -> np.ndarray:
        return np.asarray(compiled(np.ascontiguousarray(tiles, dtype=np.float32))[0])

    try:  # what OpenVINO chose (its default is bf16 on CPUs with a bf16 unit, depending on its version)
        used = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        precision = "bf16" if "bf16" in used or "bfloat16" in used else "fp32"
    except Exception:  # noqa: BLE001  an OpenVINO without the property: say what was asked
        precision = "bf16" if precision_hint == "bf16" else "fp32"
    forward.precision = precision  # type: ignore[attr-defined]
    return forward


__all__ = [
    "EXTRA_HINT",
    "onnxruntime_available",
    "onnxruntime_forward",
    "onnxruntime_session",
    "openvino_available",
    "openvino_forward",
    "require",
    "session_forward",
]
