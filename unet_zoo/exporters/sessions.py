"""onnxruntime as an inference backend: the ONNX export of a model as a function on NumPy tiles.

`onnxruntime_forward(model)` returns a callable mapping (N, C_in, H, W) float32 arrays to (N, C, H', W')
float32 probabilities, which `unet_zoo.inference.tiling.predict_tiled(..., forward=...)` uses in place of torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unet_zoo.exporters.traced import INPUT_NAME, onnx_bytes

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


def onnxruntime_forward(model: nn.Module, threads: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """Export `model` to ONNX in memory and return its onnxruntime forward function (see `session_forward`)."""
    require("onnx", "exporting to ONNX")
    return session_forward(onnxruntime_session(onnx_bytes(model), threads))


def onnxruntime_available() -> bool:
    """Whether onnx and onnxruntime are installed (the ``export`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def fastest_cpu_forward(model: nn.Module) -> tuple[str, Callable[[np.ndarray], np.ndarray] | None]:
    """The default CPU inference path: ("onnxruntime", forward) when the export extra is installed and the model
    exports, else ("torch", None) (predict_tiled's own torch path).

    onnxruntime measured 2.1x (512x512 slice) and 2.5x (2048x2048 image) faster than torch eager float32 for
    `isbi-small` on 2 CPU cores, with probabilities within 3e-7 (benchmarks/cpu_inference.py, docs/benchmarks.md).
    """
    if not onnxruntime_available():
        return "torch", None
    try:
        return "onnxruntime", onnxruntime_forward(model)
    except Exception:  # noqa: BLE001  a model the ONNX exporter rejects still predicts with torch
        return "torch", None


__all__ = [
    "EXTRA_HINT",
    "fastest_cpu_forward",
    "onnxruntime_available",
    "onnxruntime_forward",
    "onnxruntime_session",
    "require",
    "session_forward",
]
