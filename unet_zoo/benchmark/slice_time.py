"""One whole 512x512 slice predicted the way `unet-zoo predict` does it: the path `auto` picks against forced torch
float32, without and with test-time augmentation, as total seconds and as network seconds (the forward passes
alone) next to the bf16 FLOP floor of those passes (their FLOPs over the measured bf16 matmul rate).

    from unet_zoo.benchmark.slice_time import slice_prediction
    slice_prediction("isbi-small", peak={"fp32": 0.16, "bf16": 0.40})
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.benchmark._common import ForwardCall, Log, _quiet, forward_calls_flops
from unet_zoo.exporters.paths import choose_inference_path
from unet_zoo.hub.factory import from_pretrained
from unet_zoo.inference.tiling import Forward, TorchForward, predict_tiled
from unet_zoo.models.window import Margins
from unet_zoo.runtime.measured import representative_image
from unet_zoo.runtime.settings import prepare_model, runtime_settings

FP32_EAGER = "torch-fp32"


class _NetworkClock:
    """Seconds and FLOPs spent in the network's forward passes: wraps the `forward` predict_tiled runs (an exported
    path's, or the torch one), passing on an output window (``margins``) when the forward takes one."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.seconds = 0.0
        self.calls: list[ForwardCall] = []  # input shape and window of every pass

    def flops(self) -> int:
        """FLOPs of the recorded forward passes (the window's alone where one was asked for)."""
        return forward_calls_flops(self.model, self.calls)

    def wrap(self, forward: Forward) -> Forward:
        def timed(tiles: np.ndarray, margins: Margins | None = None) -> np.ndarray:
            start = time.perf_counter()
            out = forward(tiles) if margins is None else forward(tiles, margins=margins)  # type: ignore[call-arg]
            self.seconds += time.perf_counter() - start
            self.calls.append((tuple(tiles.shape), margins))
            return out

        timed.takes_margins = getattr(forward, "takes_margins", False)  # type: ignore[attr-defined]
        return timed


def _predict_seconds(model: nn.Module, image: np.ndarray, path: str, tta: bool, repeats: int, log: Log) -> dict[str, Any]:
    """Median total and network seconds of `repeats` predictions of `image` on `path` ("auto" or a path name)."""
    if path == "auto":
        choice = choose_inference_path(model, "cpu", log=log)
    else:
        choice = choose_inference_path(model, "cpu", backend="torch", precision="fp32" if path == FP32_EAGER else "bf16")
    settings = runtime_settings("cpu", choice.precision)
    prepare_model(model, "cpu", channels_last=settings.channels_last)
    torch_forward = TorchForward(model, torch.device("cpu"), settings)  # what predict_tiled runs when given none
    totals, networks, flops = [], [], 0
    warmups = 2  # not counted: oneDNN primitives, OpenVINO compilation, an exported path's session for the window
    for i in range(repeats + warmups):
        clock = _NetworkClock(model)
        forward = clock.wrap(choice.forward or torch_forward)
        start = time.perf_counter()
        predict_tiled(model, image, device="cpu", tta=tta, forward=forward)
        if i >= warmups:
            totals.append(time.perf_counter() - start)
            networks.append(clock.seconds)
            flops = clock.flops()
    model.to(memory_format=torch.contiguous_format)
    return {
        "path": choice.path,
        "how": choice.how,
        "seconds": float(np.median(totals)),
        "network_seconds": float(np.median(networks)),
        "network_flops": flops,
    }


def slice_prediction(
    model: str | nn.Module = "isbi-small",
    peak: dict[str, float] | None = None,
    side: int = 512,
    repeats: int = 3,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Prediction of one (side, side) slice with the default path (`auto`) and with torch float32, no TTA and 8-view
    TTA: {"model", "side", "rows": [{"tta", "path", "how", "seconds", "network_seconds", "network_flops",
    "floor_seconds" (FLOPs / the bf16 rate of `peak`, TFLOP/s), "of_floor" (network / floor)}], "speedup": {tta:
    torch-fp32 seconds / auto seconds}}. `model`: a checkpoint source or a model; its weights do not change the time.
    """
    net = from_pretrained(model) if isinstance(model, str) else model
    net = net.to("cpu").eval()
    image = representative_image(side)
    rows = []
    for tta in (False, True):
        for path in ("auto", FP32_EAGER):
            log(f"[slice] {path}{' with TTA' if tta else ''}")
            row = {"tta": tta, **_predict_seconds(net, image, path, tta, repeats, log)}
            if peak and peak.get("bf16"):
                row["floor_seconds"] = row["network_flops"] / (peak["bf16"] * 1e12)
                row["of_floor"] = row["network_seconds"] / row["floor_seconds"] if row["floor_seconds"] else None
            rows.append(row)
    speedup = {}
    for tta in (False, True):
        auto, fp32 = (r for r in rows if r["tta"] == tta)
        speedup["tta" if tta else "no_tta"] = fp32["seconds"] / auto["seconds"]
    return {"model": model if isinstance(model, str) else type(model).__name__, "side": side, "rows": rows, "speedup": speedup}


def slice_table(result: dict[str, Any]) -> list[str]:
    """Markdown rows of `slice_prediction`'s result."""
    lines = [
        "| TTA | run as | path | seconds | network seconds | bf16 FLOP floor, s | network / floor |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        floor = f"{r['floor_seconds']:.3g}" if r.get("floor_seconds") else "-"
        of = f"{r['of_floor']:.2f}x" if r.get("of_floor") else "-"
        run = "forced" if r["how"] == "forced" else "default"
        seconds = f"{r['seconds']:.3g} | {r['network_seconds']:.3g}"
        lines.append(f"| {'8 views' if r['tta'] else 'no'} | {run} | {r['path']} | {seconds} | {floor} | {of} |")
    s = result["speedup"]
    lines.append("")
    lines.append(f"The default path is {s['no_tta']:.2f}x as fast as torch float32 without TTA and {s['tta']:.2f}x with TTA.")
    return lines


__all__ = ["slice_prediction", "slice_table"]
