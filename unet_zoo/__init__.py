"""unet_zoo: a model zoo for the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

>>> import unet_zoo
>>> unet_zoo.list_models("*pad*")
['padded', 'padded-bilinear', 'padded-bn']
"""

from __future__ import annotations

from unet_zoo._version import __version__ as __version__
from unet_zoo.data.reading import Image, read_image
from unet_zoo.data.weight_maps import weight_map
from unet_zoo.evaluation.metrics import isbi_scores
from unet_zoo.experiments import isbi2012 as _isbi2012  # noqa: F401  registers the recipes' data source "isbi2012"
from unet_zoo.exporters import export  # light: onnx, onnxruntime and bioimageio load when an export runs
from unet_zoo.finetuning import finetune
from unet_zoo.hub.factory import create_model, from_pretrained, push_to_hub, save_pretrained
from unet_zoo.models.info import model_info
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import list_models, list_pretrained, register_model
from unet_zoo.models.unet import TimmUNet, UNet
from unet_zoo.pipeline import Prediction, Predictor, segment
from unet_zoo.segmentation import SegmentationParams
from unet_zoo.training.recipes import load_recipe
from unet_zoo.training.trainer import train

_DEPRECATED = {  # public until this release; the pipeline runs them now: `Predictor`
    "predict_tiled": ("unet_zoo.inference.tiling", "Predictor(model).predict(image)"),
    "predict_stack": ("unet_zoo.inference.tiling", "Predictor(model).predict(stack)"),
    "predict_volume": ("unet_zoo.volumes.predict", "Predictor(model).predict_volume(source, out)"),
}


def __getattr__(name: str):
    """The prediction functions that were public, with a DeprecationWarning naming what replaces them."""
    if name in _DEPRECATED:
        import importlib  # lazy: predict_volume needs the optional zarr / dask extra
        import warnings

        module, instead = _DEPRECATED[name]
        warnings.warn(
            f"unet_zoo.{name} is deprecated and will be removed in the next release; use unet_zoo.{instead}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module 'unet_zoo' has no attribute {name!r}")


__all__ = [
    "Image",
    "Prediction",
    "Predictor",
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
    "provenance_of",
    "push_to_hub",
    "read_image",
    "register_model",
    "save_pretrained",
    "segment",
    "train",
    "weight_map",
]
