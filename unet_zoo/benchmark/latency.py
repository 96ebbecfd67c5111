"""The forward latency of an architecture on one tile, for `unet-zoo compare --bench`."""

from __future__ import annotations

import torch

from unet_zoo.models.registry import create_model, get_entry
from unet_zoo.models.sizes import check_tile_side
from unet_zoo.utils.timing import Timer


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


__all__ = ["bench_tile", "measure_latency"]
