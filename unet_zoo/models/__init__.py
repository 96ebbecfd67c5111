"""The networks: conv blocks (`blocks`), the size rule of valid/padded convolutions (`sizes`), `UNet` and `TimmUNet`
(`unet`, plain `torch.nn.Module`s), the registry of named builders and pretrained pins (`registry`,
`checkpoint_names`), where a model came from (`provenance`) and `model_info` (`info`). Nothing here reads a
checkpoint: loading is `unet_zoo.from_pretrained` (the Hub layer).
"""

from unet_zoo.models.provenance import Provenance, provenance_of, set_provenance
from unet_zoo.models.registry import PRETRAINED, PretrainedCfg, create_model, list_models, list_pretrained, register_model
from unet_zoo.models.sizes import input_size_for_output, is_valid_input_size, nearest_valid_input_sizes, output_size
from unet_zoo.models.unet import TimmUNet, UNet

__all__ = [
    "PRETRAINED",
    "PretrainedCfg",
    "Provenance",
    "TimmUNet",
    "UNet",
    "create_model",
    "input_size_for_output",
    "is_valid_input_size",
    "list_models",
    "list_pretrained",
    "nearest_valid_input_sizes",
    "output_size",
    "provenance_of",
    "register_model",
    "set_provenance",
]
