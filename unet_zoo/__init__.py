"""unet_zoo: a model zoo for the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

>>> import unet_zoo
>>> unet_zoo.list_models("*pad*")
['padded', 'padded-bilinear', 'padded-bn']
"""

from __future__ import annotations

from unet_zoo._version import __version__ as __version__
from unet_zoo.data.weight_maps import weight_map
from unet_zoo.evaluation.metrics import isbi_scores, warping_error
from unet_zoo.exporters import export  # light: onnx, onnxruntime and bioimageio load when an export runs
from unet_zoo.hub.loading import load_model
from unet_zoo.hub.pretrained import from_pretrained
from unet_zoo.inference.tiling import predict_stack, predict_tiled
from unet_zoo.models.info import ModelInfo, model_info
from unet_zoo.models.registry import (
    PRETRAINED,
    PretrainedCfg,
    create_model,
    list_models,
    list_pretrained,
    register_model,
)
from unet_zoo.models.sizes import input_size_for_output, is_valid_input_size, nearest_valid_input_sizes, output_size
from unet_zoo.models.unet import TimmUNet, UNet
from unet_zoo.segmentation import SegmentationParams, segment


def __getattr__(name: str):
    """`unet_zoo.predict_volume`, imported on first use: it needs the optional zarr / dask extra."""
    if name == "predict_volume":
        from unet_zoo.volumes.predict import predict_volume  # lazy: needs the optional zarr / dask extra

        return predict_volume
    raise AttributeError(f"module 'unet_zoo' has no attribute {name!r}")


__all__ = [
    "ModelInfo",
    "PRETRAINED",
    "PretrainedCfg",
    "SegmentationParams",
    "TimmUNet",
    "UNet",
    "create_model",
    "export",
    "from_pretrained",
    "input_size_for_output",
    "is_valid_input_size",
    "isbi_scores",
    "list_models",
    "list_pretrained",
    "load_model",
    "model_info",
    "nearest_valid_input_sizes",
    "output_size",
    "predict_stack",
    "predict_tiled",
    "register_model",
    "segment",
    "warping_error",
    "weight_map",
]
