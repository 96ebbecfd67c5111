"""The networks: conv blocks (`blocks`), the size rule of valid/padded convolutions (`sizes`), `UNet` and `TimmUNet`
(`unet`), the thin Hub mixin they inherit (`hub_mixin`), the registry of named builders and pretrained pins
(`registry`, `checkpoint_names`) and `model_info` (`info`).
"""

from unet_zoo.models.registry import PRETRAINED, PretrainedCfg, create_model, list_models, list_pretrained, register_model
from unet_zoo.models.sizes import input_size_for_output, is_valid_input_size, nearest_valid_input_sizes, output_size
from unet_zoo.models.unet import TimmUNet, UNet

__all__ = [
    "PRETRAINED",
    "PretrainedCfg",
    "TimmUNet",
    "UNet",
    "create_model",
    "input_size_for_output",
    "is_valid_input_size",
    "list_models",
    "list_pretrained",
    "nearest_valid_input_sizes",
    "output_size",
    "register_model",
]
