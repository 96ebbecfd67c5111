"""onnxruntime as an inference backend: the ONNX export of a model as a function on NumPy tiles.

`onnxruntime_forward(model)` returns a callable mapping (N, C_in, H, W) float32 arrays to (N, C, H', W')
float32 probabilities, which `unet_zoo.inference.tiling.predict_tiled(..., forward=...)` uses in place of torch;
`openvino_forward(model, hint)` does the same with OpenVINO. Both build their session on first use, and for
models that pass `unet_zoo.models.window.supports_window` one per output window asked for more than once
(``margins=``: the tile's output without them, computed only where it depends on the input; `predict_tiled` asks
for it when one tile covers the image). Which path runs by default is measured (`unet_zoo.exporters.paths.choose_inference_path`).
"""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.exporters import traced
from unet_zoo.exporters.traced import INPUT_NAME, probabilities_module
from unet_zoo.models.window import Margins, supports_window
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


Export = Callable[[Margins | None], bytes]
"""margins -> a model's ONNX export (`onnx_bytes`): None for the whole tile's output, else only its window."""


def model_exports(model: nn.Module, onnx: bytes | None = None) -> Export:
    """`Export` of `model`, made once per margins (`onnx`: the whole tile's export, if made already)."""
    made: dict[Margins | None, bytes] = {} if onnx is None else {None: onnx}
    frozen = probabilities_module(model).model  # the weights as they are now, whatever happens to `model` later

    def export(margins: Margins | None) -> bytes:
        if margins not in made:
            made[margins] = traced.onnx_bytes(frozen, margins=margins)
        return made[margins]

    return export


Session = Callable[[np.ndarray], np.ndarray]


class ExportedForward:
    """(N, C_in, H, W) float32 tiles -> (N, C, H', W') float32 probabilities through a runtime's session of a
    model's ONNX export, built on first use; ``forward(tiles, margins=(top, bottom, left, right))`` (when
    ``takes_margins``) returns only the window without those margins.

    A window asked for once is cut from the whole tile's output; asked for again (the next slice of a stack, the
    next TTA view), it gets a session of its own export, which computes only the window (an export and a compile
    cost about a second, so a window pays for them only over several tiles). The last `WINDOW_SESSIONS` windows
    keep their sessions. ``precision``: what the runtime runs, "bf16" or "fp32"."""

    WINDOW_SESSIONS = 4

    def __init__(self, build: Callable[[bytes], tuple[Session, str]], export: Export, takes_margins: bool):
        self._build, self._export = build, export
        self.takes_margins = takes_margins
        self._whole: tuple[Session, str] | None = None
        self._windows: OrderedDict[Margins, tuple[Session, str]] = OrderedDict()
        self._asked: set[Margins] = set()

    def _session(self, margins: Margins | None) -> tuple[Session, str]:
        if margins is None:
            if self._whole is None:
                self._whole = self._build(self._export(None))
            return self._whole
        if margins not in self._windows:
            self._windows[margins] = self._build(self._export(margins))
            while len(self._windows) > self.WINDOW_SESSIONS:
                self._windows.popitem(last=False)
        self._windows.move_to_end(margins)
        return self._windows[margins]

    def __call__(self, tiles: np.ndarray, margins: Margins | None = None) -> np.ndarray:
        if margins is None:
            return self._session(None)[0](tiles)
        if not self.takes_margins:
            raise ValueError("this model's export cannot compute an output window; call without margins")
        top, bottom, left, right = (int(v) for v in margins)
        key = (top, bottom, left, right)
        if key in self._windows or key in self._asked:
            return self._session(key)[0](tiles)
        self._asked.add(key)
        whole = self._session(None)[0](tiles)
        return np.ascontiguousarray(whole[..., top : whole.shape[-2] - bottom, left : whole.shape[-1] - right])

    @property
    def precision(self) -> str:
        """ "bf16" or "fp32": what the runtime runs (builds the whole tile's session if none is built yet)."""
        built = self._whole or next(iter(self._windows.values()), None) or self._session(None)
        return built[1]


def onnxruntime_forward(
    model: nn.Module, threads: int | None = None, onnx: bytes | None = None, export: Export | None = None
) -> ExportedForward:
    """The onnxruntime forward (`ExportedForward`) of `model`'s ONNX export (`export`: shared exports, e.g. from
    `model_exports`; `onnx`: the whole tile's export, if made already); each session as `session_forward`."""
    require("onnx", "exporting to ONNX")
    require("onnxruntime", "running ONNX models")

    def build(data: bytes) -> tuple[Session, str]:
        return session_forward(onnxruntime_session(data, threads)), "fp32"

    return ExportedForward(build, export or model_exports(model, onnx), supports_window(model))


def onnxruntime_available() -> bool:
    """Whether onnx and onnxruntime are installed (the ``export`` extra)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def openvino_available() -> bool:
    """Whether onnx and the optional ``openvino`` package are installed (``pip install "unet-zoo[openvino]"``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "openvino"))


def openvino_session(onnx: bytes, precision_hint: str | None, threads: int | None = None) -> tuple[Session, str]:
    """An OpenVINO CPU session of an ONNX export: ((N, C_in, H, W) float32 -> its output, what OpenVINO runs:
    "bf16" or "fp32"). `precision_hint`: INFERENCE_PRECISION_HINT ("f32", "bf16"), or None for its default;
    `threads`: INFERENCE_NUM_THREADS (default: torch's thread count)."""
    ov = require("openvino", "running models with OpenVINO")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx)
        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        # OpenVINO installs its own alternate signal stack on this thread and, when two compiled models are
        # released in the order they were made, leaves a freed one behind: the next signal would then crash
        # the process. Keep the caller's stack (unet_zoo.utils.signals explains).
        with keep_signal_stack():
            compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def run(tiles: np.ndarray) -> np.ndarray:
        return np.asarray(compiled(np.ascontiguousarray(tiles, dtype=np.float32))[0])

    try:  # what OpenVINO chose (its default is bf16 on CPUs with a bf16 unit, depending on its version)
        used = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        precision = "bf16" if "bf16" in used or "bfloat16" in used else "fp32"
    except Exception:  # noqa: BLE001  an OpenVINO without the property: say what was asked
        precision = "bf16" if precision_hint == "bf16" else "fp32"
    return run, precision


def openvino_forward(
    model: nn.Module,
    precision_hint: str | None,
    threads: int | None = None,
    onnx: bytes | None = None,
    export: Export | None = None,
) -> ExportedForward:
    """OpenVINO CPU forward (`ExportedForward`) of `model`'s ONNX export: (N, C_in, H, W) float32 -> (N, C, H', W')
    probabilities; sessions as `openvino_session` (`precision_hint`, `threads`); `export`/`onnx` as
    `onnxruntime_forward`. Its ``precision`` is what OpenVINO runs. Raises ImportError naming the extra when
    openvino is not installed."""
    require("onnx", "exporting to ONNX")
    require("openvino", "running models with OpenVINO")

    def build(data: bytes) -> tuple[Session, str]:
        return openvino_session(data, precision_hint, threads)

    return ExportedForward(build, export or model_exports(model, onnx), supports_window(model))


__all__ = [
    "EXTRA_HINT",
    "Export",
    "ExportedForward",
    "model_exports",
    "openvino_session",
    "onnxruntime_available",
    "onnxruntime_forward",
    "onnxruntime_session",
    "openvino_available",
    "openvino_forward",
    "require",
    "session_forward",
]
