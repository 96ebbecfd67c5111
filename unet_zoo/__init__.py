"""unet_zoo: a model zoo for the U-Net of Ronneberger, Fischer and Brox (MICCAI 2015).

>>> import unet_zoo
>>> unet_zoo.list_models("*pad*")
['padded', 'padded-bilinear', 'padded-bn']
"""

from __future__ import annotations

from unet_zoo._version import __version__ as __version__
from unet_zoo.data.reading import Image as Image
from unet_zoo.data.reading import read_image
from unet_zoo.data.weight_maps import weight_map as weight_map
from unet_zoo.evaluation.metrics import isbi_scores as isbi_scores
from unet_zoo.experiments import isbi2012 as _isbi2012  # noqa: F401  registers the recipes' data source "isbi2012"
from unet_zoo.exporters import export  # light: onnx, onnxruntime and bioimageio load when an export runs
from unet_zoo.finetuning import finetune
from unet_zoo.hub.factory import create_model, from_pretrained, push_to_hub, save_pretrained
from unet_zoo.models.info import model_info as model_info
from unet_zoo.models.provenance import provenance_of
from unet_zoo.models.registry import list_models, list_pretrained
from unet_zoo.models.registry import register_model as register_model
from unet_zoo.models.unet import TimmUNet as TimmUNet
from unet_zoo.models.unet import UNet as UNet
from unet_zoo.pipeline import Prediction as Prediction
from unet_zoo.pipeline import Predictor, segment
from unet_zoo.segmentation import SegmentationParams
from unet_zoo.training.recipes import load_recipe as load_recipe
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


# What `from unet_zoo import *` gives: the names a newcomer needs, by task. The others stay importable as
# attributes (unet_zoo.UNet, unet_zoo.weight_map, unet_zoo.isbi_scores, unet_zoo.model_info, ...).
__all__ = [
    # a model: the one door, the registry, saving and where a model came from
    "from_pretrained",
    "create_model",
    "list_models",
    "list_pretrained",
    "save_pretrained",
    "push_to_hub",
    "provenance_of",
    # from images to probabilities and cells
    "read_image",
    "Predictor",
    "SegmentationParams",
    "segment",
    # training your own, fine-tuning, exporting
    "train",
    "finetune",
    "export",
]
