"""unet_zoo: a model zoo for the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

>>> import unet_zoo
>>> unet_zoo.list_models("*pad*")
['padded', 'padded-bilinear', 'padded-bn']
"""
from __future__ import annotations

from .info import ModelInfo, model_info
from .models import TimmUNet, UNet
from .registry import (
    PRETRAINED,
    PretrainedCfg,
    create_model,
    list_models,
    list_pretrained,
    register_model,
)
from .sizes import input_size_for_output, is_valid_input_size, nearest_valid_input_sizes, output_size

__version__ = "0.1.0"

__all__ = [
    "ModelInfo",
    "PRETRAINED",
    "PretrainedCfg",
    "TimmUNet",
    "UNet",
    "create_model",
    "input_size_for_output",
    "is_valid_input_size",
    "list_models",
    "list_pretrained",
    "model_info",
    "nearest_valid_input_sizes",
    "output_size",
    "register_model",
]
