"""What the registry knows about an architecture: parameters, FLOPs, receptive field, size rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from unet_zoo.models.registry import PRETRAINED, create_model, get_entry
from unet_zoo.models.sizes import check_tile_side, input_size_for_output, output_size, size_rule
from unet_zoo.utils.timing import Timer, count_forward_flops


@dataclass(frozen=True)
class ModelInfo:
    """Facts about one architecture at its default configuration.

    gflops: floating-point operations (multiply and add counted separately) of one forward pass
    over one default tile, in 1e9. receptive_field: pixels (side) of input that one output pixel sees.
    """

    name: str
    description: str
    family: str
    params: int
    default_tile: int
    output_tile: int
    gflops: float
    receptive_field: int | None
    size_rule: str
    pretrained: list[str]
    config: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)


def count_params(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def model_info(name: str, **overrides: Any) -> ModelInfo:
    """Parameters, GFLOPs at the default tile, receptive field and size rule of architecture `name`."""
    entry = get_entry(name)
    with torch.device("meta"):
        model = create_model(name, **overrides)
    args = model.model_args
    tile = entry.default_tile
    if entry.family == "unet":
        depth, padding = args["depth"], args["padding"]
        out_tile = output_size(tile, depth, padding)
        # Same convolutions as the valid network, so the same window: valid input minus valid output, +1.
        smallest = input_size_for_output(1, depth, 0)
        receptive_field = smallest - output_size(smallest, depth, 0) + 1
        rule = size_rule(depth, padding)
    else:
        out_tile, receptive_field = tile, None
        rule = f"output = input; input a multiple of {model.stride}"
    return ModelInfo(
        name=name,
        description=entry.description,
        family=entry.family,
        params=count_params(model),
        default_tile=tile,
        output_tile=out_tile,
        gflops=count_forward_flops(model, (1, args["in_channels"], tile, tile)) / 1e9,
        receptive_field=receptive_field,
        size_rule=rule,
        pretrained=[cfg.name for cfg in PRETRAINED.values() if cfg.architecture == name],
        config=dict(args),
    )


def bench_tile(name: str, tile: int | None = None) -> int:
    """The smallest input side (pixels) >= `tile` that architecture `name` accepts.

    `tile` defaults to the model's default tile. Valid-convolution and padded U-Nets never share a
    size (12 + 16k vs 16k), so `unet-zoo compare --bench --tile T` times each model at bench_tile(name, T).
    """
    entry = get_entry(name)
    tile = check_tile_side(tile or entry.default_tile)
    with torch.device("meta"):
        model = create_model(name)
    for size in range(tile, tile + 4096):
        if model.output_size(size) is not None:
            return size
    raise ValueError(f"no usable input size for {name!r} between {tile} and {tile + 4095}")


@torch.no_grad()
def measure_latency(name: str, tile: int | None = None, repeats: int = 3, device: str = "cpu") -> float:
    """Median seconds of one forward pass of `name` (random weights) on one tile, batch 1.

    tile: input side in pixels (default: the model's default tile); it must be usable (see `bench_tile`).
    """
    entry = get_entry(name)
    model = create_model(name).to(device).eval()
    tile = tile or entry.default_tile
    x = torch.randn(1, model.in_channels, tile, tile, device=device)
    return Timer(device, warmup=1, repeats=repeats)(lambda: model(x)).median_s
