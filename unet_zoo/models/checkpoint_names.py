"""Names of the checkpoints this zoo publishes, and which paper variant each one reproduces.

`unet-zoo reproduce isbi --variant small` trains the GPU recipe ``recipes/isbi-small.toml`` and
`unet-zoo reproduce isbi --recipe isbi-small-cpu` the CPU recipe into the checkpoint folder ``cards/isbi-small/``;
the registry lists published ones in `unet_zoo.models.registry.PRETRAINED`.
"""

from __future__ import annotations

#: paper variant (registry architecture) -> recipe name = checkpoint name.
VARIANT_RECIPES: dict[str, str] = {"original": "isbi-original", "padded": "isbi-padded", "small": "isbi-small"}


def variant_of(checkpoint_name: str) -> str | None:
    """The variant whose recipe trains `checkpoint_name` ('isbi-small' -> 'small'), or None."""
    return next((variant for variant, recipe in VARIANT_RECIPES.items() if recipe == checkpoint_name), None)


__all__ = ["VARIANT_RECIPES", "variant_of"]
