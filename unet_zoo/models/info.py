"""What the registry knows about an architecture: parameters, FLOPs, receptive field, size rule."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import PRETRAINED, create_model, get_entry
from unet_zoo.models.sizes import input_size_for_output, output_size, size_rule
from unet_zoo.utils.timing import count_forward_flops


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
    args = provenance_of(model).args
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


__all__ = ["ModelInfo", "count_params", "model_info"]
