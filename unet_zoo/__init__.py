"""unet_zoo: a model zoo for the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

>>> import unet_zoo
>>> unet_zoo.list_models("*pad*")
['padded', 'padded-bilinear', 'padded-bn']
"""

from __future__ import annotations

from . import augment, data, metrics
from ._version import __version__ as __version__
from .exporters import export  # light: onnx, onnxruntime and bioimageio load when an export runs
from .hub import from_pretrained
from .info import ModelInfo, model_info
from .loading import load_model
from .metrics import isbi_scores, warping_error
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
from .tiling import predict_stack, predict_tiled
from .weight_maps import weight_map


def __getattr__(name: str):
    """`unet_zoo.predict_volume`, imported on first use: it needs the optional zarr / dask extra."""
    if name == "predict_volume":
        from .volumes import predict_volume  # lazy: needs the optional zarr / dask extra

        return predict_volume
    raise AttributeError(f"module 'unet_zoo' has no attribute {name!r}")


__all__ = [
    "ModelInfo",
    "PRETRAINED",
    "PretrainedCfg",
    "TimmUNet",
    "UNet",
    "augment",
    "create_model",
    "data",
    "export",
    "from_pretrained",
    "input_size_for_output",
    "is_valid_input_size",
    "isbi_scores",
    "list_models",
    "list_pretrained",
    "load_model",
    "metrics",
    "model_info",
    "nearest_valid_input_sizes",
    "output_size",
    "predict_stack",
    "predict_tiled",
    "register_model",
    "warping_error",
    "weight_map",
]
