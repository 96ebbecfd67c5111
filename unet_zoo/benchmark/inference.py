"""Inference throughput of `unet_zoo.Predictor` (overlap-tile prediction) and the CPU latency of one slice, ours vs
the baseline."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from unet_zoo.benchmark._common import (
    CPU_MATMUL_N,
    TARGET_FRACTION,
    ForwardCall,
    Log,
    _backend,
    _free,
    _overrides,
    _peak_memory_gib,
    _quiet,
    _reset_peak_memory,
    _targets,
    describe,
    forward_calls_flops,
    path_config,
    ratio,
)
from unet_zoo.inference.tiling import choose_tile
from unet_zoo.models.provenance import Provenance, provenance_of, set_provenance
from unet_zoo.models.registry import create_model
from unet_zoo.pipeline import Predictor
from unet_zoo.runtime.settings import (
    prepare_model,
    resolve_device,
)
from unet_zoo.utils.timing import Timer, matmul_tflops

# --- inference -------------------------------------------------------------------------------------


class _GeometryStub(nn.Module):
    """A zero-FLOP stand-in with a model's tiling geometry: crops (or keeps) the input, C classes.

    Timing the prediction with it measures everything but the network (mirror padding, tile
    stacking, host<->device copies, softmax, stitching): the most Mpx/s the tiling loop allows.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.in_channels, self.num_classes = model.in_channels, model.num_classes
        # the architecture only (its tile defaults), not the arguments: no measured timing of the model is reused
        set_provenance(self, Provenance(architecture=provenance_of(model).architecture, source="geometry stub"))
        for attr in ("depth", "padding", "stride"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))
        self._output_size = model.output_size
        self.anchor = nn.Parameter(torch.zeros(()))  # so .to() / device lookup work

    def output_size(self, input_size: int) -> int | None:
        return self._output_size(input_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output_size(x.shape[-1])
        border = (x.shape[-1] - out) // 2
        crop = x[:, :1, border : border + out, border : border + out]
        return crop.expand(-1, self.num_classes, -1, -1) + self.anchor


def _predict_path(
    model: nn.Module,
    image: np.ndarray,
    config: dict[str, Any],
    device: torch.device,
    tile: int | None,
    batch_size: int,
    tta: bool,
    warmup: int,
    repeats: int,
) -> tuple[dict[str, Any], list[ForwardCall]]:
    """Time `Predictor.predict` of one path; also return the input shape and window of every forward call."""
    amp = config["amp"] is not None
    shapes: list[ForwardCall] = []

    def record(_: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        shapes.append((tuple(args[0].shape), kwargs.get("margins")))

    hook = model.register_forward_pre_hook(record, with_kwargs=True)

    predictor = Predictor(
        model, backend="torch", precision="auto" if amp else "fp32", tta=tta, tile=tile, batch_size=batch_size, device=device
    )

    def call() -> np.ndarray:
        return predictor.predict(image)

    result: dict[str, Any] = {"config": config, "description": describe(config)}
    if device.type == "cuda":
        result["note"] = "the prediction stores tiles channels_last on CUDA for every path"
    with _backend(config):
        _reset_peak_memory(device)
        start = time.perf_counter()
        call()  # records the forward shapes; compilation and autotuning happen here
        result["first_call_s"] = time.perf_counter() - start
        hook.remove()
        timing = Timer(device, warmup=max(warmup - 1, 0), repeats=repeats)(call)
    result["timing"] = timing.as_dict()
    result["peak_memory_gib"] = _peak_memory_gib(device)
    return result, shapes


def bench_inference(
    model_name: str = "original",
    image_side: int = 4096,
    tta: bool = False,
    device: str | torch.device | None = None,
    smoke: bool = False,
    *,
    batch_size: int | None = None,
    tile: int | None = None,
    repeats: int = 3,
    warmup: int = 1,
    compile: bool | None = None,
    channels_last: bool | None = None,
    amp: bool | None = None,
    baseline: bool = True,
    ceiling: bool = True,
    peak_tflops: float | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Overlap-tile prediction (`unet_zoo.Predictor.predict`) of one (image_side, image_side) uint8 image.

    Weights are random (the pretrained checkpoints have the same architecture, hence the same speed).

    Args:
        model_name: registered architecture ("original" = the paper's / isbi-original, "padded", ...).
        image_side: image height = width in pixels (smoke: 64).
        tta: average over the 8 flips/rotations (8x the work).
        batch_size: tiles per forward pass; None means 16 on CUDA and 4 on CPU.
        tile: input tile side; None lets the predictor choose (the model's default tile).
        repeats, warmup: timed and untimed calls per path.
        compile, channels_last, amp: our path's switches; None = on for CUDA, off for CPU.
        baseline: also time the float32 eager path; ceiling: also time a zero-FLOP stand-in model
            (the tiling loop's own limit).

    Returns:
        A JSON-serialisable dict: model, image_side, tta, tile, forward_calls, flops_per_image,
        ``ours``/``baseline`` (timing, megapixels_per_s, tflops, fraction_of_bf16_matmul),
        speedup, ``pipeline_ceiling`` (megapixels_per_s) and targets.
    """
    dev = resolve_device(device)
    overrides = _overrides(model_name, smoke)
    if smoke:
        image_side, repeats, warmup = 64, 1, 1
    if image_side < 1 or repeats < 1:
        raise ValueError(f"image_side and repeats must be >= 1, got image_side={image_side}, repeats={repeats}")
    batch_size = batch_size or (16 if dev.type == "cuda" else 4)
    torch.manual_seed(0)
    reference = create_model(model_name, **overrides)
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    chosen_tile = choose_tile(reference, image_side, image_side, tile)
    if peak_tflops is None:
        peak_tflops = matmul_tflops(dev, n=256 if smoke else (8192 if dev.type == "cuda" else CPU_MATMUL_N))
    image = np.random.default_rng(0).integers(0, 256, (image_side, image_side), dtype=np.uint8)
    megapixels = image_side**2 / 1e6

    result: dict[str, Any] = {
        "benchmark": "inference",
        "model": model_name,
        "overrides": overrides,
        "weights": "random (same architecture and speed as the pretrained checkpoint)",
        "image_side": image_side,
        "tta": tta,
        "tile": chosen_tile,
        "output_tile": reference.output_size(chosen_tile),
        "batch_size": batch_size,
        "device": str(dev),
        "bf16_matmul_tflops": peak_tflops,
        "smoke": smoke,
    }
    paths = [("ours", True)] + ([("baseline", False)] if baseline else [])
    for name, ours in paths:
        config = path_config(dev, ours, amp, channels_last, compile)
        log(f"inference {model_name} {image_side}px tta={tta}: {name} ({describe(config)})")
        model = create_model(model_name, **overrides)
        model.load_state_dict(state)
        model = prepare_model(model.eval(), dev, channels_last=config["channels_last"], compile=config["compile"])
        run, shapes = _predict_path(model, image, config, dev, tile, batch_size, tta, warmup, repeats)
        flops = forward_calls_flops(reference, shapes)
        median = run["timing"]["median_s"]
        run.update(
            forward_calls=len(shapes),
            tiles=sum(shape[0] for shape, _ in shapes),
            flops_per_image=flops,
            megapixels_per_s=megapixels / median,
            tflops=flops / median / 1e12,
            fraction_of_bf16_matmul=ratio(flops / median / 1e12, peak_tflops),
        )
        result[name] = run
        del model
        _free(dev)
    result["flops_per_image"] = result["ours"]["flops_per_image"]
    result["tiles"] = result["ours"]["tiles"]
    if ceiling:
        log(f"inference {model_name} {image_side}px tta={tta}: pipeline ceiling (zero-FLOP model)")
        stub = _GeometryStub(reference).to(dev)
        config = path_config(dev, True, amp, channels_last, False)
        run, _ = _predict_path(stub, image, config, dev, tile, batch_size, tta, warmup, repeats)
        run["megapixels_per_s"] = megapixels / run["timing"]["median_s"]
        result["pipeline_ceiling"] = run
    result["speedup"] = ratio(result["ours"]["megapixels_per_s"], result.get("baseline", {}).get("megapixels_per_s"))
    result["targets"] = _targets(
        smoke or dev.type != "cuda",
        {
            f"fraction of bf16 matmul >= {TARGET_FRACTION:.0%}": (
                result["ours"]["fraction_of_bf16_matmul"],
                TARGET_FRACTION,
            )
        },
    )
    return result


def bench_cpu_latency(
    model_names: Sequence[str] = ("original", "padded", "small"),
    side: int = 512,
    repeats: int = 3,
    warmup: int = 1,
    smoke: bool = False,
    threads: int | None = None,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Seconds to predict one (side, side) uint8 slice on the CPU with `unet_zoo.Predictor` (torch fp32, batch 4).

    `threads` sets ``torch.set_num_threads`` for the measurement (restored afterwards); None keeps the
    current setting. Returns {"side", "threads", "models": {name: {tile, tiles, timing, median_s}}}.
    """
    if smoke:
        side, repeats, warmup = 64, 1, 0
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    image = np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8)
    result: dict[str, Any] = {
        "benchmark": "cpu_latency",
        "side": side,
        "threads": torch.get_num_threads(),
        "smoke": smoke,
        "models": {},
    }
    try:
        for name in model_names:
            log(f"cpu latency {name} {side}x{side}")
            torch.manual_seed(0)
            model = create_model(name, **_overrides(name, smoke)).eval()
            predictor = Predictor(model, backend="torch", precision="fp32", device="cpu")
            timing = Timer("cpu", warmup=warmup, repeats=repeats)(functools.partial(predictor.predict, image))
            tile = choose_tile(model, side, side)
            result["models"][name] = {"tile": tile, "median_s": timing.median_s, "timing": timing.as_dict()}
    finally:
        torch.set_num_threads(old_threads)
    return result
