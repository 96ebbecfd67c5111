"""unet_zoo: a model zoo for the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

>>> import unet_zoo
>>> unet_zoo.list_models("*pad*")
['padded', 'padded-bilinear', 'padded-bn']
"""

from __future__ import annotations

from unet_zoo._version import __version__ as __version__
from unet_zoo.data.weight_maps import weight_map
from unet_zoo.evaluation.metrics import isbi_scores
from unet_zoo.experiments import isbi2012 as _isbi2012  # noqa: F401  registers the recipes' data source "isbi2012"
from unet_zoo.exporters import export  # light: onnx, onnxruntime and bioimageio load when an export runs
from unet_zoo.finetuning import finetune
from unet_zoo.hub.factory import create_model, from_pretrained, push_to_hub, save_pretrained
from unet_zoo.inference.tiling import predict_stack, predict_tiled
from unet_zoo.models.info import model_info
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import list_models, list_pretrained, register_model
from unet_zoo.models.unet import TimmUNet, UNet
from unet_zoo.segmentation import SegmentationParams, segment
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import train


def __getattr__(name: str):
    """`unet_zoo.predict_volume`, imported on first use: it needs the optional zarr / dask extra."""
    if name == "predict_volume":
        from unet_zoo.volumes.predict import predict_volume  # lazy: needs the optional zarr / dask extra

        return predict_volume
    raise AttributeError(f"module 'unet_zoo' has no attribute {name!r}")


# `predict_volume` is left out of __all__: it needs the optional volumes extra, and `from unet_zoo import *` must
# work with the base install alone. `unet_zoo.predict_volume` still imports it on first use.
__all__ = [
    "SegmentationParams",
    "TimmUNet",
    "UNet",
    "create_model",
    "export",
    "finetune",
    "from_pretrained",
    "isbi_scores",
    "list_models",
    "list_pretrained",
    "load_recipe",
    "model_info",
    "predict_stack",
    "predict_tiled",
    "provenance_of",
    "push_to_hub",
    "register_model",
    "save_pretrained",
    "segment",
    "train",
    "weight_map",
]
