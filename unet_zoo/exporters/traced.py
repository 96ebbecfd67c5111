"""TorchScript and ONNX files of a zoo model, whose output is the softmax probabilities.

Both formats hold a traced graph of ``Probabilities(model)``: input (N, C_in, H, W) float32 images scaled
to [0, 1], output (N, num_classes, H', W') float32 per-class probabilities. Batch, height and width are
dynamic; H and W must follow the model's size rule (`size_rule`), e.g. 188 + 16n with H' = H - 184
for the paper's valid-convolution `original`, multiples of 16 with H' = H for the padded U-Nets.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unet_zoo.models.sizes import size_rule
from unet_zoo.models.window import Margins, WindowedLogits

# Highest opset torch's TorchScript-based ONNX exporter writes; onnxruntime >= 1.14 runs it. (The newer
# torch.export-based exporter rejects the zoo's size checks and crops under dynamic height and width.)
ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "input", "output"
TOLERANCE = 1e-4  # max abs difference of the probabilities allowed between an export and the torch model


class Probabilities(nn.Module):
    """Wraps a zoo model: (N, C_in, H, W) float32 -> (N, num_classes, H', W') softmax probabilities."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(x), dim=1)


def probabilities_module(model: nn.Module) -> Probabilities:
    """A CPU float32 eval-mode copy of `model` wrapped in `Probabilities` (the model itself is untouched)."""
    return Probabilities(copy.deepcopy(model).to("cpu", torch.float32).eval()).eval()


def example_size(model: nn.Module, at_least: int = 64) -> int:
    """The smallest input side >= `at_least` pixels that `model` accepts (for tracing and checks)."""
    size = at_least
    while model.output_size(size) is None:
        size += 1
    return size


def size_rule_text(model: nn.Module) -> str:
    """The model's input -> output size rule in words, e.g. 'output = input - 184; input = 188 + 16k ...'."""
    depth, padding = getattr(model, "depth", None), getattr(model, "padding", None)
    if depth is not None and padding is not None:
        return size_rule(depth, padding)
    stride = getattr(model, "stride", None)
    return f"output = input; input a multiple of {stride}" if stride else "see model.output_size"


def example_input(model: nn.Module, size: int | None = None, batch: int = 1, seed: int = 0) -> torch.Tensor:
    """Random (batch, C_in, size, size) float32 input in [0, 1] of a size `model` accepts."""
    size = size or example_size(model)
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, int(getattr(model, "in_channels", 1)), size, size, generator=generator)


@contextlib.contextmanager
def _quiet():
    """Silence the tracer's notes (torch.jit.trace's deprecation, shape checks turned into constants):
    `check_export` runs the traced graph on other sizes instead."""
    with warnings.catch_warnings():
        for category in (FutureWarning, DeprecationWarning, UserWarning, torch.jit.TracerWarning):
            warnings.simplefilter("ignore", category)
        yield


def torchscript_bytes(model: nn.Module) -> bytes:
    """TorchScript (``torch.jit.trace``) of `Probabilities(model)`, serialised; loads with ``torch.jit.load``."""
    wrapped = probabilities_module(model)
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.jit.save(torch.jit.trace(wrapped, example_input(model), check_trace=False), buffer)
    return buffer.getvalue()


def onnx_bytes(model: nn.Module, opset: int = ONNX_OPSET, margins: Margins | None = None) -> bytes:
    """ONNX model of `Probabilities(model)` with dynamic batch, height and width; input "input", output "output".

    `margins` (top, bottom, left, right px; models that pass `unet_zoo.models.window.supports_window`): the graph
    computes only the output's window without them (`WindowedLogits`): (N, C, H - top - bottom, W - left - right)."""
    wrapped = probabilities_module(model)
    at_least = 96
    if margins is not None:
        wrapped = Probabilities(WindowedLogits(wrapped.model, margins)).eval()
        at_least = max(at_least, 64 + max(margins[0] + margins[1], margins[2] + margins[3]))
    buffer = io.BytesIO()
    with _quiet(), torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example_input(model, example_size(model, at_least)),),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
            },
        )
    return buffer.getvalue()


def torch_probabilities(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The reference: (N, C_in, H, W) float32 -> (N, C, H', W') probabilities of the torch model on the CPU."""
    with torch.no_grad():
        return probabilities_module(model)(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


def load_torchscript(data: bytes | str | Path):
    """A callable (N, C_in, H, W) float32 array -> probabilities array, from TorchScript bytes or a file."""
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with _quiet():
        module = torch.jit.load(source, map_location="cpu").eval()

    def run(x: np.ndarray) -> np.ndarray:
        # no profiling re-optimisation per new input shape: it costs seconds and changes nothing numerically
        with torch.no_grad(), torch.jit.optimized_execution(False):
            return module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    return run


def check_export(model: nn.Module, run, inputs: list[np.ndarray] | None = None, tolerance: float = TOLERANCE) -> float:
    """Max abs difference between `run(x)` and the torch model's probabilities over `inputs` (default: random
    inputs of two sizes and batch sizes); raises ValueError when a shape differs or it exceeds `tolerance`."""
    if inputs is None:
        small = example_size(model)
        larger = example_size(model, small + 1)  # the next size the model accepts: a non-square, batch-2 input
        inputs = [example_input(model, small).numpy(), example_input(model, larger, batch=2, seed=1).numpy()[..., :small]]
    worst = 0.0
    for x in inputs:
        expected, got = torch_probabilities(model, x), np.asarray(run(x))
        if got.shape != expected.shape:
            raise ValueError(f"exported model gives shape {got.shape} for input {x.shape}; torch gives {expected.shape}")
        worst = max(worst, float(np.abs(got - expected).max()))
    if not worst <= tolerance:
        raise ValueError(f"exported model differs from torch by {worst:.3g} (> {tolerance:g}) in the probabilities")
    return worst


__all__ = [
    "INPUT_NAME",
    "ONNX_OPSET",
    "OUTPUT_NAME",
    "Probabilities",
    "TOLERANCE",
    "check_export",
    "example_input",
    "example_size",
    "load_torchscript",
    "onnx_bytes",
    "probabilities_module",
    "size_rule_text",
    "torch_probabilities",
    "torchscript_bytes",
]
